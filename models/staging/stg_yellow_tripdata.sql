with

source as (

    select * from {{ ref('yellow_tripdata') }}

),

renamed as (

    select
        -- ids
        unique_row_id as trip_id,
        'Yellow' as service_type,
        file_month,
        vendorid as vendor_id,
        ratecodeid as rate_code_id,
        pulocationid as pickup_location_id,
        dolocationid as dropoff_location_id,

        -- trip
        tpep_pickup_datetime as pickup_datetime,
        tpep_dropoff_datetime as dropoff_datetime,
        store_and_fwd_flag,
        passenger_count,
        trip_distance,
        -- yellow cabs take street hails only (green's trip_type 1)
        1 as trip_type,

        -- money
        fare_amount,
        extra,
        mta_tax,
        tip_amount,
        tolls_amount,
        -- e-hail fees exist for green cabs only
        cast(null as numeric) as ehail_fee,
        improvement_surcharge,
        congestion_surcharge,
        total_amount,
        payment_type,
        {{ payment_type_description('payment_type') }} as payment_type_description,

        -- flags: rows are kept, and marked
        {{ any_negative(trip_amount_columns() | reject('equalto', 'ehail_fee') | list) }} as has_negative_amount,
        coalesce({{ month_start('tpep_pickup_datetime') }} <> file_month, false) as is_pickup_outside_file_month,

        -- lineage
        load_id

    from source

)

select * from renamed
