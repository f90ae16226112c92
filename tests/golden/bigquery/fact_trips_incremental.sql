-- generated script to merge partitions into `taxi-test`.`nyc_taxi_core`.`fact_trips`
      declare dbt_partitions_for_replacement array<date>;



       -- 1. create a temp table with model data




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

zones as (

    select * from `taxi-test`.`nyc_taxi_core`.`dim_zones`

),

loads as (

    select * from `taxi-test`.`nyc_taxi`.`load_ledger`

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
    left join zones as pickup_zone
        on trips.pickup_location_id = pickup_zone.location_id
    left join zones as dropoff_zone
        on trips.dropoff_location_id = dropoff_zone.location_id
    left join loads
        on trips.load_id = loads.load_id

)

select * from final
    );

      -- 2. define partitions to update
      set (dbt_partitions_for_replacement) = (
          select as struct
              -- IGNORE NULLS: this needs to be aligned to _dbt_max_partition, which ignores null
              array_agg(distinct date(file_month) IGNORE NULLS)
          from `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`
      );

      -- 3. run the merge statement


    merge into `taxi-test`.`nyc_taxi_core`.`fact_trips` as DBT_INTERNAL_DEST
        using (
        select
        * from `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`
      ) as DBT_INTERNAL_SOURCE
        on FALSE

    when not matched by source
         and date(DBT_INTERNAL_DEST.file_month) in unnest(dbt_partitions_for_replacement)
        then delete

    when not matched then insert
        (`trip_id`, `service_type`, `file_month`, `vendor_id`, `rate_code_id`, `pickup_location_id`, `dropoff_location_id`, `pickup_datetime`, `dropoff_datetime`, `store_and_fwd_flag`, `passenger_count`, `trip_distance`, `trip_type`, `fare_amount`, `extra`, `mta_tax`, `tip_amount`, `tolls_amount`, `ehail_fee`, `improvement_surcharge`, `congestion_surcharge`, `total_amount`, `payment_type`, `payment_type_description`, `has_negative_amount`, `is_pickup_outside_file_month`, `load_id`, `loaded_at`, `pickup_borough`, `pickup_zone`, `dropoff_borough`, `dropoff_zone`)
    values
        (`trip_id`, `service_type`, `file_month`, `vendor_id`, `rate_code_id`, `pickup_location_id`, `dropoff_location_id`, `pickup_datetime`, `dropoff_datetime`, `store_and_fwd_flag`, `passenger_count`, `trip_distance`, `trip_type`, `fare_amount`, `extra`, `mta_tax`, `tip_amount`, `tolls_amount`, `ehail_fee`, `improvement_surcharge`, `congestion_surcharge`, `total_amount`, `payment_type`, `payment_type_description`, `has_negative_amount`, `is_pickup_outside_file_month`, `load_id`, `loaded_at`, `pickup_borough`, `pickup_zone`, `dropoff_borough`, `dropoff_zone`)

;

      -- 4. clean up the temp table
      drop table if exists `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`
