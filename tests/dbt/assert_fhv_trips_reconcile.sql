-- Per file month, the fhv trips agree from one layer to the next: the main table (read through its
-- staging view), fact_fhv_trips, and the travel-time mart, which counts every trip, timed or not.
-- Scoped like assert_trip_totals_reconcile: a build for given months checks those months.
{%- set months = refresh_months() %}

with

main_table as (

    select file_month, count(*) as trips
    from {{ ref('stg_fhv_tripdata') }}
    {%- if months %}
        where {{ in_file_months('file_month', months) }}
    {%- endif %}
    group by file_month

),

fact_fhv_trips as (

    select file_month, count(*) as trips
    from {{ ref('fact_fhv_trips') }}
    {%- if months %}
        where {{ in_file_months('file_month', months) }}
    {%- endif %}
    group by file_month

),

mart as (

    select file_month, sum(trips) as trips
    from {{ ref('dm_fhv_monthly_zone_travel_time') }}
    {%- if months %}
        where {{ in_file_months('file_month', months) }}
    {%- endif %}
    group by file_month

),

mismatches as (

    select
        coalesce(main_table.file_month, fact_fhv_trips.file_month, mart.file_month) as file_month,
        main_table.trips as main_table_trips,
        fact_fhv_trips.trips as fact_trips,
        mart.trips as mart_trips
    from main_table
    full outer join fact_fhv_trips
        on main_table.file_month = fact_fhv_trips.file_month
    full outer join mart
        on coalesce(main_table.file_month, fact_fhv_trips.file_month) = mart.file_month
    where
        main_table.trips is distinct from fact_fhv_trips.trips
        or fact_fhv_trips.trips is distinct from mart.trips

)

select * from mismatches
