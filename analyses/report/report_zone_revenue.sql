{#- `runner report`: revenue and trips per file month and pickup zone, both service types together. -#}

with

zone_revenue as (

    select * from {{ ref('dm_monthly_zone_revenue') }}

),

final as (

    select
        file_month,
        revenue_zone,
        sum(revenue_monthly_total_amount) as revenue,
        sum(total_monthly_trips) as trips
    from zone_revenue
    group by file_month, revenue_zone

)

select * from final
