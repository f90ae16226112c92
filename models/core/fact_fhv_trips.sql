{#- Postgres: a view, so replacing a month of the main table replaces it here at no cost. -#}
{{ config(**month_slices_config(cluster_by=['pickup_location_id', 'dropoff_location_id'], postgres='view')) -}}

with

fhv_trips as (

    select * from {{ ref('stg_fhv_tripdata') }}
    {%- if is_incremental() %}
        where {{ in_refresh_months() }}
    {%- endif %}

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

final as (

    select
        trips.*,
        loads.finished_at as loaded_at,
        coalesce(pickup_zone.borough, 'Unknown') as pickup_borough,
        coalesce(pickup_zone.zone, 'Unknown') as pickup_zone,
        coalesce(dropoff_zone.borough, 'Unknown') as dropoff_borough,
        coalesce(dropoff_zone.zone, 'Unknown') as dropoff_zone
    from fhv_trips as trips
    -- left joins: trips without a zone, or in an unknown one, stay
    left join pickup_zones as pickup_zone
        on trips.pickup_location_id = pickup_zone.location_id
    left join dropoff_zones as dropoff_zone
        on trips.dropoff_location_id = dropoff_zone.location_id
    left join loads
        on trips.load_id = loads.load_id

)

select * from final
