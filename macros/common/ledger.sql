{#-
    The load ledger: one row per attempt to load a file month, written by the macros themselves
    so loads that bypass the runner (dbt alone, Kestra) are recorded too.
      state   running -> succeeded | failed
      action  loaded (new month), replaced (a month's rows swapped for a new file),
              unchanged (same file as the month's last load: rows left as they are),
              removed (the month's rows removed: macros/common/remove_month.sql)
-#}

{% macro tripdata_begin_load(taxi, month, load_id, filename=none, source_url=none, bytes=none, checksum=none, loaded_by='runner', header=none, readable=true, loader=none, incoming=false) %}
    {#-
        run-operation for loaders that stream the file themselves (the runner, a Kestra CopyIn):
        makes sure the tables exist, records the load as running, and returns with an empty-or-stale
        landing table ready for `COPY .. FROM STDIN` (the loader truncates it under the month lock).
        header: the file's first line as the loader read it (readable false: not a readable gzip),
        checked first (macros/common/file_rules.sql); a loader that passes none skips the check.
        loader: the server session the loader holds until the load ends (Postgres: {pid, started_at});
        when it is gone, so is the load (see ledger_end_abandoned_loads). None: nobody's.
        incoming (Postgres): the loader COPYs from several sessions at once, into a table of the
        load's own made empty here (incoming_relation), not the landing table: rows that several
        commits land are whole only once all committed. The load's merge, given var landed_rows,
        takes that table as the landing table; nothing else reads it.
    -#}
    {%- set taxi = validate_taxi(taxi) -%}
    {%- set args = tripdata_month(month) -%}
    {%- do validate_load_id(load_id) -%}
    {%- if header is not none or not readable -%}
        {%- do check_file_header(taxi, args, header, readable) -%}
    {%- endif -%}
    {%- do tripdata_prepare(taxi) -%}
    {%- do tripdata_begin() -%}
    {%- do create_landing_table(taxi, args) -%}
    {%- if incoming -%}
        {%- do create_incoming_table(taxi, args, load_id) -%}
    {%- endif -%}
    {%- do ledger_insert_running(taxi, args, load_id, {
        'filename': filename or tripdata_filename(taxi, args),
        'source_url': source_url, 'bytes': bytes, 'checksum': checksum, 'loaded_by': loaded_by,
        'loader': loader,
    }) -%}
    {%- do lock_month(taxi, args, load_id) -%}  {#- BigQuery: the lease, held until the load finishes -#}
    {%- do tripdata_commit() -%}
    {{ log('load ' ~ load_id ~ ': ' ~ landing_relation(taxi, args) ~ ' is ready to load', info=true) }}
{% endmacro %}


{% macro tripdata_end_abandoned_loads(taxi, month) %}
    {#-
        run-operation: end the month's running loads whose loader is gone, without loading it
        (a run that skips a month loaded from the same file still tidies the ledger).
    -#}
    {%- set taxi = validate_taxi(taxi) -%}
    {%- set args = tripdata_month(month) -%}
    {%- if relation_exists(ledger_relation()) -%}
        {%- do tripdata_begin() -%}
        {%- do ledger_end_abandoned_loads(taxi, args, '') -%}
        {%- do tripdata_commit() -%}
    {%- endif -%}
{% endmacro %}


{% macro tripdata_fail_load(load_id, error, taxi=none, month=none, filename=none, source_url=none, loaded_by='runner') %}
    {#-
        run-operation: a loader's own failure (download, header, COPY) goes on record too.
        With taxi and month, a load that failed before it was opened is recorded as well.
    -#}
    {%- do validate_load_id(load_id) -%}
    {%- if taxi is not none and month is not none -%}
        {%- set taxi = validate_taxi(taxi) -%}
        {%- set args = tripdata_month(month) -%}
        {%- do tripdata_prepare(taxi) -%}
        {%- do tripdata_begin() -%}
        {%- if ledger_load(load_id) is none -%}
            {%- do ledger_insert_running(taxi, args, load_id, {
                'filename': filename or tripdata_filename(taxi, args),
                'source_url': source_url, 'bytes': none, 'checksum': none, 'loaded_by': loaded_by,
                'loader': none,
            }) -%}
        {%- endif -%}
        {%- do tripdata_commit() -%}
    {%- endif -%}
    {%- do ledger_mark_failed("load_id = " ~ sql_string(load_id), error) -%}
{% endmacro %}


{% macro record_tripdata_failures(results) %}
    {#- on-run-end: a month whose merge failed is marked failed, with dbt's message. -#}
    {%- if execute -%}
        {%- for result in results if result.node.config.materialized == 'tripdata_month' and result.status == 'error' -%}
            {%- do ledger_mark_failed(
                "invocation_id = " ~ sql_string(invocation_id) ~ " and taxi = "
                ~ sql_string(result.node.name | replace('_tripdata', '')),
                result.message
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}


{% macro validate_load_id(load_id) %}
    {%- if load_id is not string or not modules.re.match('^[A-Za-z0-9-]{1,64}$', load_id) -%}
        {{ exceptions.raise_compiler_error("load_id '" ~ load_id ~ "' must be 1-64 letters, digits or dashes") }}
    {%- endif -%}
{% endmacro %}


{#- Ledger statements, written in SQL both warehouses accept. -#}

{% macro ledger_insert_running(taxi, month, load_id, info) %}
    {#-
        First, loads of the month whose loader is gone are ended (see ledger_end_abandoned_loads).
        info.loader says whose life the new load is tied to: a session the loader named
        (tripdata_begin_load), none (nobody's), or, when absent, this very session (a load by dbt
        alone merges on the connection that opens its ledger row).
    -#}
    {%- do ledger_end_abandoned_loads(taxi, month, load_id) -%}
    {%- set loader = ledger_loader_columns(taxi, month, info.get('loader', 'this session')) -%}
    {%- set values = [
        sql_string(load_id), sql_string(taxi), "cast('" ~ month.first_day ~ "' as date)", sql_string(info.filename),
        sql_string(info.source_url), (info.bytes | int) if info.bytes is not none else 'null', sql_string(info.checksum),
        "'running'", dbt.current_timestamp(), sql_string(info.loaded_by), sql_string(invocation_id),
    ] + (loader.values() | list) -%}
    {%- set columns = [
        'load_id', 'taxi', 'file_month', 'filename', 'source_url', 'bytes', 'checksum', 'state', 'started_at',
        'loaded_by', 'invocation_id',
    ] + (loader.keys() | list) -%}
    {% call statement('ledger_insert', auto_begin=true) %}
        insert into {{ ledger_relation() }} ({{ columns | join(', ') }})
        values ({{ values | join(', ') }})
    {% endcall %}
{% endmacro %}


{#-
    A load whose loader died (kill -9, a lost connection, a crashed server) stays `running` unless
    someone ends it. Each new load of a month ends the month's running loads whose loader is known
    to be gone, as failed. Known to be gone, never guessed: on Postgres a load records the server
    session its life is tied to (loader_pid, loader_started_at):
      - the runner: the session that holds the month's runner lock (runner/warehouse.py runner_lock)
        from before tripdata_begin_load until the month is done, named by its pid and start time;
      - dbt alone: the dbt session that opens the ledger row, and merges on the same connection;
      - a loader that holds no session across its steps (Kestra: begin_load, CopyIn, build) records
        none, and is never ended this way.
    Gone = no session with that pid and start time (a pid can be reused; a start time cannot), read
    from a fresh pg_stat_activity (a backend started after a cached snapshot would look gone).
    An UPDATE racing the dead loader's last COMMIT waits for it and skips the row if it finished.
    BigQuery: a load holds its month with a lease (bigquery__lock_month); a running load whose lease
    expired is gone, and the next load of the month may take it over: nothing recorded here.
    load_is_abandoned says the same as a condition: stg_ingestion__loads shows such rows as interrupted.
-#}
{% macro ledger_end_abandoned_loads(taxi, month, load_id) %}
    {{ return(adapter.dispatch('ledger_end_abandoned_loads', 'nyc_taxi')(taxi, month, load_id)) }}
{% endmacro %}
{% macro default__ledger_end_abandoned_loads(taxi, month, load_id) %}{% endmacro %}
{% macro load_is_abandoned(loads) %}
    {#- SQL: the running load (a row of the ledger aliased `loads`) whose loader is known to be gone. -#}
    {{ return(adapter.dispatch('load_is_abandoned', 'nyc_taxi')(loads)) }}
{% endmacro %}
{% macro bigquery__load_is_abandoned(loads) %}
    ({{ loads }}.state = 'running' and {{ loads }}.lease_expires_at < current_timestamp())
{%- endmacro %}
{% macro ledger_loader_columns(taxi, month, loader) %}
    {#- Extra ledger columns (name -> SQL) naming the session the new load's life is tied to. -#}
    {{ return(adapter.dispatch('ledger_loader_columns', 'nyc_taxi')(taxi, month, loader)) }}
{% endmacro %}
{% macro default__ledger_loader_columns(taxi, month, loader) %}{{ return({}) }}{% endmacro %}


{% macro ledger_load(load_id) %}
    {#- One ledger row as a dict, or none. -#}
    {%- set rows = run_query("select * from " ~ ledger_relation() ~ " where load_id = " ~ sql_string(load_id)) -%}
    {{ return(dict(rows.rows[0].items()) if rows.rows | length else none) }}
{% endmacro %}


{% macro current_loads(ledger=none) %}
    {#-
        The rule for reading the ledger, in one place: per taxi and file month, the load whose rows
        the main table holds. That is the last successful load that wrote rows (an `unchanged` load
        leaves the rows, and their load_id, as they were), unless a removal came after it (then the
        month holds none). Two loads of a month never overlap (the month lock), so the last to finish
        is the last to commit. The macros, the models (model_loads, the marts' refresh) and the
        runner (runner/pipeline.py, compiled through dbt) all read the ledger through it.
        ledger: the relation to read, by default the ledger source (models pass its staging view).
    -#}
    select
        {{ ledger_columns() | join(',\n        ') }}
    from (
        select
            {{ ledger_columns() | join(',\n            ') }},
            row_number() over (partition by taxi, file_month order by finished_at desc, load_id desc) as recency
        from {{ ledger if ledger is not none else source('ingestion', 'load_ledger') }}
        where state = 'succeeded' and action in ('loaded', 'replaced', 'removed')
    ) as loads
    where recency = 1 and action != 'removed'
{%- endmacro %}


{% macro ledger_columns() %}
    {#- What every ledger holds (Postgres adds the loader's session). -#}
    {{ return([
        'load_id', 'taxi', 'file_month', 'filename', 'source_url', 'bytes', 'checksum',
        'rows_in_file', 'rows_loaded', 'repeats_collapsed', 'exact_repeats', 'same_id_variants',
        'pickups_outside_month', 'state', 'action', 'error', 'started_at', 'finished_at', 'loaded_by',
        'invocation_id',
    ]) }}
{% endmacro %}


{% macro ledger_current_load(taxi, month) %}
    {#- The month's current load (see current_loads) as a dict, or none. -#}
    {%- set rows = run_query(
        "select * from (" ~ current_loads() ~ ") as current_loads where taxi = " ~ sql_string(taxi)
        ~ " and file_month = cast('" ~ month.first_day ~ "' as date)"
    ) -%}
    {{ return(dict(rows.rows[0].items()) if rows.rows | length else none) }}
{% endmacro %}


{% macro ledger_update(load_id, changes) %}
    {%- set assignments = [] -%}
    {%- for column, value in changes.items() -%}
        {%- if value is none -%}
            {%- do assignments.append(column ~ ' = null') -%}
        {%- elif value is number -%}
            {%- do assignments.append(column ~ ' = ' ~ value) -%}
        {%- else -%}
            {%- do assignments.append(column ~ ' = ' ~ sql_string(value)) -%}
        {%- endif -%}
    {%- endfor -%}
    {% call statement('ledger_update', auto_begin=true) %}
        update {{ ledger_relation() }} set {{ assignments | join(', ') }} where load_id = {{ sql_string(load_id) }}
    {% endcall %}
{% endmacro %}


{% macro ledger_finish(load_id, counts) %}
    {% call statement('ledger_finish', auto_begin=true) %}
        {{ ledger_finish_sql(load_id, counts) }}
    {% endcall %}
{% endmacro %}


{% macro ledger_finish_sql(load_id, counts) %}
    {%- set assignments = ["state = 'succeeded'", "error = null", "finished_at = " ~ dbt.current_timestamp()] -%}
    {%- for column in ['rows_in_file', 'rows_loaded', 'repeats_collapsed', 'exact_repeats', 'same_id_variants', 'pickups_outside_month']
        if column in counts -%}
        {%- do assignments.append(column ~ ' = ' ~ ('null' if counts[column] is none else counts[column] | int)) -%}
    {%- endfor -%}
    {%- do assignments.append('action = ' ~ sql_string(counts.action)) -%}
    {{ return('update ' ~ ledger_relation() ~ '\nset ' ~ assignments | join(', ') ~ '\nwhere load_id = ' ~ sql_string(load_id)) }}
{% endmacro %}


{% macro ledger_mark_failed(condition, error) %}
    {#- Only running rows change: a load that already finished keeps its outcome. -#}
    {%- if relation_exists(ledger_relation()) -%}
        {% call statement('ledger_fail', auto_begin=true) %}
            update {{ ledger_relation() }}
            set state = 'failed', error = {{ sql_string((error or 'failed') | string | truncate(4000, true, '...')) }},
                finished_at = {{ dbt.current_timestamp() }}
            where state = 'running' and {{ condition }}
        {% endcall %}
    {%- endif -%}
{% endmacro %}
