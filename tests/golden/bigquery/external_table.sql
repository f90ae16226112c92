create or replace external table `taxi-test`.`nyc_taxi_landing`.`green_tripdata_2020_10` (
    vendorid int64,
    lpep_pickup_datetime datetime,
    lpep_dropoff_datetime datetime,
    store_and_fwd_flag string,
    ratecodeid int64,
    pulocationid int64,
    dolocationid int64,
    passenger_count int64,
    trip_distance numeric(38, 9),
    fare_amount numeric(38, 9),
    extra numeric(38, 9),
    mta_tax numeric(38, 9),
    tip_amount numeric(38, 9),
    tolls_amount numeric(38, 9),
    ehail_fee numeric(38, 9),
    improvement_surcharge numeric(38, 9),
    total_amount numeric(38, 9),
    payment_type int64,
    trip_type int64,
    congestion_surcharge numeric(38, 9)
)
options (
    uris = ['gs://taxi-test-bucket/green/green_tripdata_2020-10.csv.gz'],
    format = 'CSV',
    skip_leading_rows = 1,
    compression = 'GZIP'
)
