{#-
    `runner report`: per taxi type and file month, the latest load attempt (its state, its error) and
    the load the main table holds (rows, file size, seconds), and whether the models reflect it.
-#}

with

loads as (

    select * from {{ ref('stg_ingestion__loads') }}

),

current_loads as (

    {{ current_loads(ref('stg_ingestion__loads')) }}

),

model_loads as (

    select * from {{ ref('model_loads') }}

),

attempts as (

    select
        taxi,
        file_month,
        state,
        action,
        error,
        started_at,
        row_number() over (partition by taxi, file_month order by started_at desc, load_id desc) as recency
    from loads

),

final as (

    select
        attempts.taxi,
        attempts.file_month,
        attempts.state as latest_state,
        attempts.action as latest_action,
        attempts.error as latest_error,
        attempts.started_at as latest_started_at,
        current_loads.load_id,
        current_loads.filename,
        current_loads.bytes,
        current_loads.rows_in_file,
        current_loads.rows_loaded,
        current_loads.exact_repeats,
        current_loads.same_id_variants,
        current_loads.pickups_outside_month,
        {{ seconds_between('current_loads.started_at', 'current_loads.finished_at') }} as load_seconds,
        model_loads.models_current
    from attempts
    left join current_loads
        on attempts.taxi = current_loads.taxi and attempts.file_month = current_loads.file_month
    left join model_loads
        on attempts.taxi = model_loads.taxi and attempts.file_month = model_loads.file_month
    where attempts.recency = 1

)

select * from final
