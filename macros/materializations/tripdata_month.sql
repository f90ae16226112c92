{#-
    The main tables `green_tripdata` and `yellow_tripdata` are models of this materialization.
    `dbt build` makes sure they exist. `dbt build --vars '{taxi: green, month: 2019-01}'` ingests
    that file month into the green one:
      - with var raw_dir (Postgres): the warehouse lands the file itself, then the month is merged;
      - else, if something landed the month (rows in its landing table: the runner, Kestra CopyIn;
        BigQuery: its external table, from `dbt run-operation stage_external_sources`): it is merged;
      - else, if the ledger says the month is loaded: nothing to do;
      - else: an error naming the month and the ways to land it.
    Optional vars: load_id (a ledger row a loader opened with tripdata_begin_load),
    landed_rows (with load_id: the loader COPYed that many rows into the load's own table,
    tripdata_begin_load incoming=true: the merge takes that table, and checks it holds them all),
    force (replace the month even when the file is the one already loaded).
-#}

{% materialization tripdata_month, default %}
    {%- set taxi = this.identifier | replace('_tripdata', '') -%}
    {%- set month = tripdata_month_vars(taxi) -%}

    {{ run_hooks(pre_hooks) }}
    {%- do tripdata_prepare(taxi) -%}

    {%- set summary = ingest_month(taxi, month) if month is not none else 'table ready' -%}

    {% call statement('main', auto_begin=true) %}
        select {{ sql_string(summary) }} as summary
    {% endcall %}
    {{ run_hooks(post_hooks) }}
    {{ return({'relations': [this]}) }}
{% endmaterialization %}


{% macro ingest_month(taxi, month) %}
    {%- set raw_dir = tripdata_raw_dir() -%}
    {%- set load_id = var('load_id', none) -%}
    {%- set where = taxi ~ ' ' ~ month.month -%}
    {%- set landed_rows = var('landed_rows', none) -%}
    {%- if landed_rows is not none and (load_id is none or landed_rows is not number or landed_rows != landed_rows | int or landed_rows < 0) -%}
        {{ exceptions.raise_compiler_error(where ~ ": var landed_rows (" ~ landed_rows ~ ") must be a count of rows, given with var load_id") }}
    {%- endif -%}

    {#- A loader that passes its load_id has landed rows: its load is finished below, whatever it finds. -#}
    {%- set landed = landed_file(taxi, month) if raw_dir is none and load_id is none else none -%}
    {%- if raw_dir is none and load_id is none and landed is none -%}
        {%- set current = ledger_current_load(taxi, month) -%}
        {%- if current is not none -%}
            {{ log(where ~ ': nothing landed; the month is loaded (load ' ~ current.load_id ~ ', '
                ~ current.rows_loaded ~ ' rows): left as it is', info=true) }}
            {{ return('already loaded') }}
        {%- endif -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": nothing to merge: " ~ landing_relation(taxi, month) ~ " is empty or missing and the ledger has no load of "
            ~ month.filename ~ ". Land it first: `runner load --taxi " ~ taxi ~ " --month " ~ month.month ~ "`, "
            ~ landing_advice(taxi, month)
        ) }}
    {%- endif -%}

    {#- Open (or adopt) the ledger row and commit it, so a failure below stays on record. -#}
    {%- do tripdata_begin() -%}
    {%- if load_id is not none -%}
        {%- do validate_load_id(load_id) -%}
        {%- set load = ledger_load(load_id) -%}
        {%- if load is none or load.state != 'running' or load.taxi != taxi or (load.file_month | string) != month.first_day -%}
            {{ exceptions.raise_compiler_error(where ~ ": load_id " ~ load_id ~ " is not a running load of this month in the ledger") }}
        {%- endif -%}
        {%- do ledger_update(load_id, {'invocation_id': invocation_id}) -%}
        {%- if landed_rows is not none -%}
            {#- committed here: if the merge fails, the landing table holds the whole file, for a retry -#}
            {%- do lock_month(taxi, month, load_id) -%}
            {%- do adopt_incoming(taxi, month, load_id) -%}
        {%- endif -%}
    {%- else -%}
        {%- set load_id = invocation_id -%}
        {%- do ledger_insert_running(taxi, month, load_id, {
            'filename': month.filename, 'source_url': landed.source_url if landed else none,
            'bytes': none, 'checksum': none,
            'loaded_by': landed.loaded_by if landed else 'dbt raw_dir',
        }) -%}
    {%- endif -%}
    {%- do tripdata_commit() -%}

    {#- One transaction from here: land (raw_dir), merge, record. -#}
    {%- do tripdata_begin() -%}
    {%- do lock_month(taxi, month, load_id) -%}
    {%- if raw_dir is not none -%}
        {%- do ledger_update(load_id, land_from_raw_dir(taxi, month, raw_dir)) -%}
    {%- endif -%}
    {%- set load = ledger_load(load_id) -%}
    {%- set current = ledger_current_load(taxi, month) -%}

    {%- if current is not none and load.checksum and load.checksum == current.checksum and not var('force', false) -%}
        {#-
            The same file again: the rows stay as they are (and keep their load_id). So too when
            nothing landed: a concurrent load of the same file merged it while we waited for the
            lock, or the loader only confirms that the month holds this file.
        -#}
        {%- do discard_landing(taxi, month) -%}
        {%- set counts = {'action': 'unchanged', 'rows_loaded': 0} -%}
        {%- for column in ['rows_in_file', 'rows_loaded', 'repeats_collapsed', 'exact_repeats', 'same_id_variants', 'pickups_outside_month'] if current is not none -%}
            {%- do counts.update({column: current[column]}) -%}
        {%- endfor -%}
    {%- else -%}
        {%- set counts = merge_month(taxi, month, load) -%}
    {%- endif -%}
    {%- if not counts.get('ledger_finished') -%}
        {%- do ledger_finish(load_id, counts) -%}
    {%- endif -%}
    {%- do tripdata_commit() -%}
    {{ log(where ~ ': ' ~ counts.action ~ ', ' ~ counts.rows_loaded ~ ' rows (load ' ~ load_id ~ ')', info=true) }}
    {{ return(counts.action ~ ' ' ~ counts.rows_loaded ~ ' rows') }}
{% endmacro %}
