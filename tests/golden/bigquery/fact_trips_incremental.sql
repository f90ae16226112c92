-- generated script to merge partitions into `taxi-test`.`nyc_taxi_core`.`fact_trips`
      declare dbt_partitions_for_replacement array<date>;



        -- 1. temp table already exists, we used it to check for schema changes
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
