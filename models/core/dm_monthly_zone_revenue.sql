{{ config(**month_slices_config(cluster_by=['service_type', 'pickup_location_id'])) -}}

with

trips as (

    select * from {{ ref('fact_trips') }}
    {%- if is_incremental() %}
        where {{ in_refresh_months() }}
    {%- endif %}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

loads as (

    select * from {{ ref('stg_ingestion__loads') }}

),

zone_revenue as (

    -- summed by zone id first, named after: the month's rows need no join
    select
        pickup_location_id,
        file_month,
        service_type,
        -- one load per service type and file month (the main tables swap whole months): the load
        -- these figures reflect, which model_loads compares with the ledger
        load_id,
        {%- for amount in trip_amount_columns() %}
            coalesce(sum({{ amount }}), 0) as {{ revenue_column(amount) }},
        {%- endfor %}
        count(*) as total_monthly_trips,
        avg(passenger_count) as avg_monthly_passenger_count,
        avg(trip_distance) as avg_monthly_trip_distance,
        sum(case when is_pickup_outside_file_month then 1 else 0 end) as pickups_outside_file_month,
        sum(case when has_negative_amount then 1 else 0 end) as trips_with_negative_amount,
        sum(case when vendor_id is null then 1 else 0 end) as trips_without_vendor
    from trips
    group by pickup_location_id, file_month, service_type, load_id

),

final as (

    select
        zone_revenue.pickup_location_id,
        coalesce(zones.zone, 'Unknown') as revenue_zone,
        zone_revenue.file_month,
        zone_revenue.service_type,
        {%- for amount in trip_amount_columns() %}
            zone_revenue.{{ revenue_column(amount) }},
        {%- endfor %}
        zone_revenue.total_monthly_trips,
        zone_revenue.avg_monthly_passenger_count,
        zone_revenue.avg_monthly_trip_distance,
        zone_revenue.pickups_outside_file_month,
        zone_revenue.trips_with_negative_amount,
        zone_revenue.trips_without_vendor,
        loads.finished_at as loaded_at,
        zone_revenue.load_id
    from zone_revenue
    left join zones
        on zone_revenue.pickup_location_id = zones.location_id
    left join loads
        on zone_revenue.load_id = loads.load_id

)

select * from final
