-- generated script to replace the partitions of `taxi-test`.`nyc_taxi_core`.`fact_trips` its batch holds
declare partitions_to_replace array<date>;

set partitions_to_replace = (
    select array_agg(distinct file_month)
    from `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`
    where file_month is not null
);

begin transaction;

delete from `taxi-test`.`nyc_taxi_core`.`fact_trips`
where file_month in unnest(partitions_to_replace);

insert into `taxi-test`.`nyc_taxi_core`.`fact_trips` (`trip_id`, `service_type`, `file_month`, `vendor_id`, `rate_code_id`, `pickup_location_id`, `dropoff_location_id`, `pickup_datetime`, `dropoff_datetime`, `store_and_fwd_flag`, `passenger_count`, `trip_distance`, `trip_type`, `fare_amount`, `extra`, `mta_tax`, `tip_amount`, `tolls_amount`, `ehail_fee`, `improvement_surcharge`, `congestion_surcharge`, `total_amount`, `payment_type`, `payment_type_description`, `has_negative_amount`, `is_pickup_outside_file_month`, `load_id`, `loaded_at`, `pickup_borough`, `pickup_zone`, `dropoff_borough`, `dropoff_zone`)
select
    `trip_id`,
    `service_type`,
    `file_month`,
    `vendor_id`,
    `rate_code_id`,
    `pickup_location_id`,
    `dropoff_location_id`,
    `pickup_datetime`,
    `dropoff_datetime`,
    `store_and_fwd_flag`,
    `passenger_count`,
    `trip_distance`,
    `trip_type`,
    `fare_amount`,
    `extra`,
    `mta_tax`,
    `tip_amount`,
    `tolls_amount`,
    `ehail_fee`,
    `improvement_surcharge`,
    `congestion_surcharge`,
    `total_amount`,
    `payment_type`,
    `payment_type_description`,
    `has_negative_amount`,
    `is_pickup_outside_file_month`,
    `load_id`,
    `loaded_at`,
    `pickup_borough`,
    `pickup_zone`,
    `dropoff_borough`,
    `dropoff_zone`
from `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`;

commit transaction;

drop table if exists `taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`
