{#-
    Our figures beside those the course's own dbt project (DataTalksClub's taxi_rides_ny, Module 4)
    computes from the same rows, per service type and month, with the rows and amounts each of its
    three rules moves (README "Our numbers next to the course's"). Ours keep every row of the files,
    by file month. The course:
      1. drops rows without a vendor (its staging);
      2. keeps one row per vendor, pickup second, pickup zone and service type, the earliest dropoff
         (its tie-break is arbitrary: here the smallest trip_id, so the figures are repeatable);
      3. reports a trip under its pickup month, not its file month.
    Run it: `dbt show --select course_comparison --limit 100`.
-#}

with

trips as (

    select * from {{ ref('fact_trips') }}

),

ranked as (

    select
        service_type,
        file_month,
        total_amount,
        vendor_id is null as is_without_vendor,
        {{ month_start('pickup_datetime') }} as pickup_month,
        row_number() over (
            partition by vendor_id, pickup_datetime, pickup_location_id, service_type
            order by dropoff_datetime, trip_id
        ) as course_rank
    from trips

),

ours as (

    select
        service_type,
        file_month as trip_month,
        count(*) as trips,
        sum(total_amount) as revenue,
        sum(case when is_without_vendor then 1 else 0 end) as rows_without_vendor,
        coalesce(sum(case when is_without_vendor then total_amount end), 0) as amount_without_vendor,
        sum(case when not is_without_vendor and course_rank > 1 then 1 else 0 end) as course_repeat_rows,
        coalesce(sum(case when not is_without_vendor and course_rank > 1 then total_amount end), 0)
            as course_repeat_amount
    from ranked
    group by service_type, file_month

),

course_trips as (

    select * from ranked
    where not is_without_vendor and course_rank = 1

),

moved_out as (

    select
        service_type,
        file_month as trip_month,
        count(*) as rows_to_other_months,
        sum(total_amount) as amount_to_other_months
    from course_trips
    where pickup_month != file_month
    group by service_type, file_month

),

moved_in as (

    select
        service_type,
        pickup_month as trip_month,
        count(*) as rows_from_other_months,
        sum(total_amount) as amount_from_other_months
    from course_trips
    where pickup_month != file_month
    group by service_type, pickup_month

),

course as (

    select
        service_type,
        pickup_month as trip_month,
        count(*) as course_trips,
        sum(total_amount) as course_revenue
    from course_trips
    group by service_type, pickup_month

),

months as (

    select
        service_type,
        trip_month
    from ours
    union distinct
    select
        service_type,
        trip_month
    from course

),

final as (

    select
        months.service_type,
        months.trip_month,
        coalesce(ours.trips, 0) as trips,
        coalesce(ours.revenue, 0) as revenue,
        coalesce(course.course_trips, 0) as course_trips,
        coalesce(course.course_revenue, 0) as course_revenue,
        coalesce(ours.rows_without_vendor, 0) as rows_without_vendor,
        coalesce(ours.amount_without_vendor, 0) as amount_without_vendor,
        coalesce(ours.course_repeat_rows, 0) as course_repeat_rows,
        coalesce(ours.course_repeat_amount, 0) as course_repeat_amount,
        coalesce(moved_out.rows_to_other_months, 0) as rows_to_other_months,
        coalesce(moved_out.amount_to_other_months, 0) as amount_to_other_months,
        coalesce(moved_in.rows_from_other_months, 0) as rows_from_other_months,
        coalesce(moved_in.amount_from_other_months, 0) as amount_from_other_months
    from months
    left join ours
        on months.service_type = ours.service_type and months.trip_month = ours.trip_month
    left join course
        on months.service_type = course.service_type and months.trip_month = course.trip_month
    left join moved_out
        on months.service_type = moved_out.service_type and months.trip_month = moved_out.trip_month
    left join moved_in
        on months.service_type = moved_in.service_type and months.trip_month = moved_in.trip_month

)

select * from final
order by service_type, trip_month
