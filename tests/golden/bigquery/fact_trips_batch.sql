create or replace table `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`

    partition by file_month
    cluster by service_type, pickup_location_id


    OPTIONS(
      expiration_timestamp=TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 12 hour)
    )
    as (
      with

green_trips as (

    select * from `taxi-test`.`nyc_taxi_staging`.`stg_green_tripdata`

),

yellow_trips as (

    select * from `taxi-test`.`nyc_taxi_staging`.`stg_yellow_tripdata`

),

pickup_zones as (

    select * from `taxi-test`.`nyc_taxi_core`.`dim_zones`

),

dropoff_zones as (

    select * from `taxi-test`.`nyc_taxi_core`.`dim_zones`

),

loads as (

    select * from `taxi-test`.`nyc_taxi_staging`.`stg_ingestion__loads`

),

trips as (

    select * from green_trips
    union all
    select * from yellow_trips

),

trips_to_build as (

    select * from trips
        where file_month in (cast('2020-10-01' as date))

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
    );
