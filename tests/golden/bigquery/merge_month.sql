begin transaction;

        delete from `taxi-test`.`nyc_taxi`.`green_tripdata`
        where file_month = date '2020-10-01';

        insert into `taxi-test`.`nyc_taxi`.`green_tripdata` (vendorid, lpep_pickup_datetime, lpep_dropoff_datetime, store_and_fwd_flag, ratecodeid, pulocationid, dolocationid, passenger_count, trip_distance, fare_amount, extra, mta_tax, tip_amount, tolls_amount, ehail_fee, improvement_surcharge, total_amount, payment_type, trip_type, congestion_surcharge, unique_row_id, file_month, filename, load_id)
        with landed as (
            select
                *,
                to_hex(md5(concat(coalesce(cast(vendorid as string), '\\N'), '|', coalesce(cast(unix_micros(timestamp(lpep_pickup_datetime)) as string), '\\N'), '|', coalesce(cast(unix_micros(timestamp(lpep_dropoff_datetime)) as string), '\\N'), '|', coalesce(cast(pulocationid as string), '\\N'), '|', coalesce(cast(dolocationid as string), '\\N'), '|', coalesce(regexp_replace(regexp_replace(cast(fare_amount as string), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', ''), '\\N'), '|', coalesce(regexp_replace(regexp_replace(cast(trip_distance as string), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', ''), '\\N')))) as unique_row_id
            from `taxi-test`.`nyc_taxi_landing`.`green_tripdata_2020_10`
        )

        select
            vendorid,
            lpep_pickup_datetime,
            lpep_dropoff_datetime,
            store_and_fwd_flag,
            ratecodeid,
            pulocationid,
            dolocationid,
            passenger_count,
            trip_distance,
            fare_amount,
            extra,
            mta_tax,
            tip_amount,
            tolls_amount,
            ehail_fee,
            improvement_surcharge,
            total_amount,
            payment_type,
            trip_type,
            congestion_surcharge,
            unique_row_id,
            date '2020-10-01' as file_month,
            'green_tripdata_2020-10.csv.gz' as filename,
            '<load_id>' as load_id
        from landed
        where true
        qualify row_number() over (
            partition by unique_row_id
            order by vendorid asc nulls first, lpep_pickup_datetime asc nulls first, lpep_dropoff_datetime asc nulls first, store_and_fwd_flag asc nulls first, ratecodeid asc nulls first, pulocationid asc nulls first, dolocationid asc nulls first, passenger_count asc nulls first, trip_distance asc nulls first, fare_amount asc nulls first, extra asc nulls first, mta_tax asc nulls first, tip_amount asc nulls first, tolls_amount asc nulls first, ehail_fee asc nulls first, improvement_surcharge asc nulls first, total_amount asc nulls first, payment_type asc nulls first, trip_type asc nulls first, congestion_surcharge asc nulls first
        ) = 1;

        update `taxi-test`.`nyc_taxi`.`load_ledger`
set state = 'succeeded', error = null, finished_at = current_timestamp(), rows_in_file = 95120, rows_loaded = 95120, repeats_collapsed = 0, exact_repeats = 0, same_id_variants = 0, pickups_outside_month = 9, action = 'loaded'
where load_id = '<load_id>';

        commit transaction;
