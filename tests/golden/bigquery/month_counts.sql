with distinct_rows as (
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
        count(*) as copies
    from `taxi-test`.`nyc_taxi_landing`.`green_tripdata_2020_10`
    group by vendorid, lpep_pickup_datetime, lpep_dropoff_datetime, store_and_fwd_flag, ratecodeid, pulocationid, dolocationid, passenger_count, trip_distance, fare_amount, extra, mta_tax, tip_amount, tolls_amount, ehail_fee, improvement_surcharge, total_amount, payment_type, trip_type, congestion_surcharge
)

select
    coalesce(sum(copies), 0) as rows_in_file,
    count(*) as distinct_rows,
    count(distinct to_hex(md5(concat(coalesce(cast(vendorid as string), '\\N'), '|', coalesce(cast(unix_micros(timestamp(lpep_pickup_datetime)) as string), '\\N'), '|', coalesce(cast(unix_micros(timestamp(lpep_dropoff_datetime)) as string), '\\N'), '|', coalesce(cast(pulocationid as string), '\\N'), '|', coalesce(cast(dolocationid as string), '\\N'), '|', coalesce(regexp_replace(regexp_replace(cast(fare_amount as string), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', ''), '\\N'), '|', coalesce(regexp_replace(regexp_replace(cast(trip_distance as string), r'(\.[0-9]*?)0+$', r'\1'), r'\.$', ''), '\\N'))))) as distinct_ids,
    coalesce(sum(if(
        lpep_pickup_datetime < datetime '2020-10-01'
        or lpep_pickup_datetime >= datetime '2020-11-01', copies, 0
    )), 0) as pickups_outside_month
from distinct_rows
