{{ config(**month_slices_config(cluster_by=['service_type', 'pickup_location_id'])) -}}

with

trips as (

    select * from {{ ref('fact_trips') }}
    {%- if is_incremental() %}
        where {{ in_refresh_months('file_month') }}
    {%- endif %}

),

monthly_zone_revenue as (

    select
        pickup_location_id,
        pickup_zone as revenue_zone,
        file_month,
        service_type,
        {%- for amount in trip_amount_columns() %}
            coalesce(sum({{ amount }}), 0) as revenue_monthly_{{ amount | replace('fare_amount', 'fare') }},
        {%- endfor %}
        count(*) as total_monthly_trips,
        avg(passenger_count) as avg_monthly_passenger_count,
        avg(trip_distance) as avg_monthly_trip_distance,
        sum(case when is_pickup_outside_file_month then 1 else 0 end) as pickups_outside_file_month,
        max(loaded_at) as loaded_at
    from trips
    group by pickup_location_id, pickup_zone, file_month, service_type

)

select * from monthly_zone_revenue
