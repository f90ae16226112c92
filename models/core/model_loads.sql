{#-
    Which load the analytics models reflect, per taxi type and file month, beside the load the main
    table holds. The runner reads it: before a run it rebuilds the months whose models are behind
    (an interrupted models build, a load by dbt alone without its downstream build), and
    `runner status` shows it.
-#}
{{ config(materialized='view') }}

with

current_loads as (

    {{ current_loads(ref('stg_ingestion__loads')) }}

),

zone_revenue as (

    select * from {{ ref('dm_monthly_zone_revenue') }}

),

fhv_travel_time as (

    select * from {{ ref('dm_fhv_monthly_zone_travel_time') }}

),

built_loads as (

    -- the loads the marts were built from: green and yellow in one, fhv in the other
    select load_id from zone_revenue
    union distinct
    select load_id from fhv_travel_time

),

final as (

    select
        current_loads.taxi,
        current_loads.file_month,
        current_loads.load_id,
        current_loads.finished_at as loaded_at,
        built_loads.load_id as models_load_id,
        built_loads.load_id is not null as models_current
    from current_loads
    left join built_loads
        on current_loads.load_id = built_loads.load_id

)

select * from final
