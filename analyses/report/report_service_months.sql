{#-
    `runner report`: per service type and file month, trips and what the marts sum (revenue and the
    quality counts for green and yellow; fhv has no amounts).
-#}

with

zone_revenue as (

    select * from {{ ref('dm_monthly_zone_revenue') }}

),

fhv_travel_time as (

    select * from {{ ref('dm_fhv_monthly_zone_travel_time') }}

),

trip_months as (

    select
        service_type,
        file_month,
        sum(total_monthly_trips) as trips,
        sum(revenue_monthly_total_amount) as revenue,
        sum(trips_with_negative_amount) as trips_with_negative_amount,
        sum(trips_without_vendor) as trips_without_vendor
    from zone_revenue
    group by service_type, file_month

),

fhv_months as (

    select
        'FHV' as service_type,
        file_month,
        sum(trips) as trips,
        cast(null as numeric) as revenue,
        cast(null as bigint) as trips_with_negative_amount,
        cast(null as bigint) as trips_without_vendor
    from fhv_travel_time
    group by file_month

),

final as (

    select * from trip_months
    union all
    select * from fhv_months

)

select * from final
