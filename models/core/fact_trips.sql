{#- Postgres: a view, so replacing a month of the main tables replaces it here at no cost. -#}
{{ config(**month_slices_config(cluster_by=['service_type', 'pickup_location_id'], postgres='view')) -}}

with

green_trips as (

    select * from {{ ref('stg_green_tripdata') }}

),

yellow_trips as (

    select * from {{ ref('stg_yellow_tripdata') }}

),

pickup_zones as (

    select * from {{ ref('dim_zones') }}

),

dropoff_zones as (

    select * from {{ ref('dim_zones') }}

),

loads as (

    select * from {{ ref('stg_ingestion__loads') }}

),

trips as (

    select * from green_trips
    union all
    select * from yellow_trips

),

trips_to_build as (

    select * from trips
    {%- if is_incremental() %}
        where {{ in_refresh_months() }}
    {%- endif %}

),

final as (

    select
        trips.*,
        loads.finished_at as loaded_at,
        coalesce(pickup_zone.borough, 'Unknown') as pickup_borough,
        coalesce(pickup_zone.zone, 'Unknown') as pickup_zone,
        coalesce(dropoff_zone.borough, 'Unknown') as dropoff_borough,
        coalesce(dropoff_zone.zone, 'Unknown') as dropoff_zone
    from trips_to_build as trips
    -- left joins: trips in unknown zones stay
    left join pickup_zones as pickup_zone
        on trips.pickup_location_id = pickup_zone.location_id
    left join dropoff_zones as dropoff_zone
        on trips.dropoff_location_id = dropoff_zone.location_id
    left join loads
        on trips.load_id = loads.load_id

)

select * from final
