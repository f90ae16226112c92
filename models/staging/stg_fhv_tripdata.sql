with

source as (

    select * from {{ ref('fhv_tripdata') }}

),

renamed as (

    select
        -- ids
        unique_row_id as trip_id,
        'FHV' as service_type,
        file_month,
        dispatching_base_num as dispatching_base_number,
        affiliated_base_number,
        pulocationid as pickup_location_id,
        dolocationid as dropoff_location_id,

        -- trip
        pickup_datetime,
        dropoff_datetime,
        {{ trip_duration_seconds('pickup_datetime', 'dropoff_datetime') }} as trip_duration_seconds,
        coalesce(sr_flag = 1, false) as is_shared_ride,

        -- flags: rows are kept, and marked
        pulocationid is null as is_pickup_location_unknown,
        dolocationid is null as is_dropoff_location_unknown,
        coalesce(
            dropoff_datetime < pickup_datetime
            or {{ trip_duration_seconds('pickup_datetime', 'dropoff_datetime') }}
            > {{ longest_plausible_trip_seconds() }},
            true
        ) as is_duration_impossible,
        coalesce({{ month_start('pickup_datetime') }} <> file_month, false) as is_pickup_outside_file_month,

        -- lineage
        load_id

    from source

)

select * from renamed
