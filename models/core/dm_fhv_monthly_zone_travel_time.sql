{{ config(**month_slices_config(cluster_by=['pickup_location_id', 'dropoff_location_id'])) -}}

with

trips as (

    select * from {{ ref('fact_fhv_trips') }}
    {%- if is_incremental() %}
        where {{ in_refresh_months() }}
    {%- endif %}

),

loads as (

    select * from {{ ref('stg_ingestion__loads') }}

),

timed_trips as (

    -- every trip is counted; only a possible duration enters the percentiles
    select
        file_month,
        load_id,
        pickup_location_id,
        pickup_zone,
        dropoff_location_id,
        dropoff_zone,
        case when not is_duration_impossible then trip_duration_seconds end as travel_seconds
    from trips

),

percentiles as (

    select
        file_month,
        load_id,
        pickup_location_id,
        pickup_zone,
        dropoff_location_id,
        dropoff_zone,
        count(*) as trips,
        count(travel_seconds) as timed_trips,
        {{ exact_percentile('travel_seconds', 0.5) }} as p50_travel_seconds,
        {{ exact_percentile('travel_seconds', 0.9) }} as p90_travel_seconds
    from timed_trips
    group by file_month, load_id, pickup_location_id, pickup_zone, dropoff_location_id, dropoff_zone

),

final as (

    select
        cast(extract(year from percentiles.file_month) as integer) as file_year,
        cast(extract(month from percentiles.file_month) as integer) as file_month_number,
        percentiles.file_month,
        percentiles.pickup_location_id,
        percentiles.pickup_zone,
        percentiles.dropoff_location_id,
        percentiles.dropoff_zone,
        percentiles.trips,
        percentiles.timed_trips,
        percentiles.p50_travel_seconds,
        percentiles.p90_travel_seconds,
        loads.finished_at as loaded_at,
        percentiles.load_id
    from percentiles
    left join loads
        on percentiles.load_id = loads.load_id

)

select * from final
