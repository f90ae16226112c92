{#-
    One plain select, without import CTEs: then Postgres sees through it to the ledger's primary
    key, and a query of fact_trips that does not use loaded_at skips fact_trips' join to it.
    The main tables' materialization makes the ledger: this view is built after them.
-#}
-- depends_on: {{ ref('green_tripdata') }}, {{ ref('yellow_tripdata') }}, {{ ref('fhv_tripdata') }}

select
    -- ids
    loads.load_id,
    loads.taxi,
    loads.file_month,
    loads.invocation_id,

    -- the file
    loads.filename,
    loads.source_url,
    loads.bytes,
    loads.checksum,

    -- counts
    loads.rows_in_file,
    loads.rows_loaded,
    loads.repeats_collapsed,
    loads.exact_repeats,
    loads.same_id_variants,
    loads.pickups_outside_month,

    -- outcome: a running load whose loader is gone (killed, its server session or lease ended) was
    -- interrupted; the ledger itself says so at the month's next load
    case when {{ load_is_abandoned('loads') }} then 'interrupted' else loads.state end as state,
    loads.action,
    loads.error,
    loads.started_at,
    loads.finished_at,
    loads.loaded_by

from {{ source('ingestion', 'load_ledger') }} as loads
