-- Per service type and file month, the trips and the sum of every amount agree from one layer to
-- the next: the main tables (read through their staging views, one row per table row), fact_trips,
-- the mart. A build for given months (the runner's, a month's own) checks those months: another
-- load may be adding a month right now, whose own build brings the models up to date.
{%- set months = refresh_months() %}

with

main_tables as (

    {{ trip_totals(ref('stg_green_tripdata'), months) }}
    union all
    {{ trip_totals(ref('stg_yellow_tripdata'), months) }}

),

fact_trips as (

    {{ trip_totals(ref('fact_trips'), months) }}

),

mart as (

    {{ trip_totals(ref('dm_monthly_zone_revenue'), months, 'sum(total_monthly_trips)', revenue_column) }}

),

mismatches as (

    {{ trip_totals_mismatches('main_tables', 'fact_trips') }}
    union all
    {{ trip_totals_mismatches('fact_trips', 'mart') }}

)

select * from mismatches
