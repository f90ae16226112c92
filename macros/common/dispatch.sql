{#-
    The warehouse work, one dispatcher each; the bodies live in macros/<adapter>/.
    An adapter without a body gets a clear error instead of half-working SQL.
-#}

{% macro tripdata_not_supported(name) %}
    {{ exceptions.raise_compiler_error(name ~ " is not implemented for the " ~ adapter.type() ~ " adapter") }}
{% endmacro %}

{#-
    Transactions are opened and closed explicitly: on dbt-postgres 1.11 each statement a macro runs
    commits on its own (auto_begin does not hold a transaction across statements), which would
    release the month lock and expose half a merge.
-#}
{% macro tripdata_begin() %}{{ return(adapter.dispatch('tripdata_begin', 'nyc_taxi')()) }}{% endmacro %}
{% macro default__tripdata_begin() %}
    {% call statement('tripdata_begin', auto_begin=false) %}begin{% endcall %}
{% endmacro %}
{% macro tripdata_commit() %}{{ return(adapter.dispatch('tripdata_commit', 'nyc_taxi')()) }}{% endmacro %}
{% macro default__tripdata_commit() %}
    {% call statement('tripdata_commit', auto_begin=false) %}commit{% endcall %}
{% endmacro %}

{#- Create what a month needs if missing: main table, ledger, landing schema. -#}
{% macro tripdata_prepare(taxi) %}{{ return(adapter.dispatch('tripdata_prepare', 'nyc_taxi')(taxi)) }}{% endmacro %}
{% macro default__tripdata_prepare(taxi) %}{{ tripdata_not_supported('tripdata_prepare') }}{% endmacro %}

{#- The month's landing table, created if missing. -#}
{% macro create_landing_table(taxi, month) %}{{ return(adapter.dispatch('create_landing_table', 'nyc_taxi')(taxi, month)) }}{% endmacro %}
{% macro default__create_landing_table(taxi, month) %}{{ tripdata_not_supported('create_landing_table') }}{% endmacro %}

{#-
    The table of a load's own that a loader COPYs into from several sessions at once
    (tripdata_begin_load incoming=true), and its merge taking it as the month's landing table.
-#}
{% macro create_incoming_table(taxi, month, load_id) %}{{ return(adapter.dispatch('create_incoming_table', 'nyc_taxi')(taxi, month, load_id)) }}{% endmacro %}
{% macro default__create_incoming_table(taxi, month, load_id) %}{{ tripdata_not_supported('create_incoming_table') }}{% endmacro %}
{% macro adopt_incoming(taxi, month, load_id) %}{{ return(adapter.dispatch('adopt_incoming', 'nyc_taxi')(taxi, month, load_id)) }}{% endmacro %}
{% macro default__adopt_incoming(taxi, month, load_id) %}{{ tripdata_not_supported('adopt_incoming') }}{% endmacro %}

{#-
    Serialise everything that touches one taxi type's month: Postgres holds a lock for the rest of
    the transaction; BigQuery gives the load `load_id` a lease on the month in the ledger.
-#}
{% macro lock_month(taxi, month, load_id=none) %}{{ return(adapter.dispatch('lock_month', 'nyc_taxi')(taxi, month, load_id)) }}{% endmacro %}
{% macro default__lock_month(taxi, month, load_id) %}{{ tripdata_not_supported('lock_month') }}{% endmacro %}

{#-
    Where the warehouse reads month files itself: var raw_dir (Postgres: a folder on the database
    server), or none. BigQuery reads a month through its external table instead
    (macros/bigquery/external_tables.sql).
-#}
{% macro tripdata_raw_dir() %}{{ return(adapter.dispatch('tripdata_raw_dir', 'nyc_taxi')()) }}{% endmacro %}
{% macro default__tripdata_raw_dir() %}{{ return(var('raw_dir', none)) }}{% endmacro %}

{#- `<raw_dir>/<taxi>/<file>`, after checking raw_dir holds nothing but plain path characters. -#}
{% macro raw_file_path(raw_dir, taxi, month) %}{{ return(adapter.dispatch('raw_file_path', 'nyc_taxi')(raw_dir, taxi, month)) }}{% endmacro %}

{#- Land `<raw_dir>/<taxi>/<file>` with the warehouse's own loader; returns bytes, checksum, source_url. -#}
{% macro land_from_raw_dir(taxi, month, raw_dir) %}{{ return(adapter.dispatch('land_from_raw_dir', 'nyc_taxi')(taxi, month, raw_dir)) }}{% endmacro %}
{% macro default__land_from_raw_dir(taxi, month, raw_dir) %}{{ tripdata_not_supported('land_from_raw_dir') }}{% endmacro %}

{#-
    What another loader landed for the month, or none: rows in its landing table, or (BigQuery)
    an external table over its object. Returns loaded_by and source_url for the ledger.
-#}
{% macro landed_file(taxi, month) %}{{ return(adapter.dispatch('landed_file', 'nyc_taxi')(taxi, month)) }}{% endmacro %}
{% macro default__landed_file(taxi, month) %}{{ tripdata_not_supported('landed_file') }}{% endmacro %}

{#- The end of the "nothing to merge" error: the other ways to land a month on this warehouse. -#}
{% macro landing_advice(taxi, month) %}{{ return(adapter.dispatch('landing_advice', 'nyc_taxi')(taxi, month)) }}{% endmacro %}
{% macro default__landing_advice(taxi, month) %}
    {{ return(
        "or set var raw_dir to a folder on the database server that holds " ~ taxi ~ "/" ~ month.filename ~ ", "
        ~ "or COPY the file into the landing table (Kestra CopyIn after `dbt run-operation tripdata_begin_load`)"
    ) }}
{% endmacro %}

{#- The landing table's rows are not needed (the month already holds the same file). -#}
{% macro discard_landing(taxi, month) %}{{ return(adapter.dispatch('discard_landing', 'nyc_taxi')(taxi, month)) }}{% endmacro %}
{% macro default__discard_landing(taxi, month) %}
    {% call statement('discard_landing', auto_begin=true) %}
        truncate table {{ landing_relation(taxi, month) }}
    {% endcall %}
{% endmacro %}

{#-
    Replace the month in the main table with the landing table's rows; returns the counts.
    A body may also finish the ledger row in its own transaction: it then returns ledger_finished.
-#}
{% macro merge_month(taxi, month, load) %}{{ return(adapter.dispatch('merge_month', 'nyc_taxi')(taxi, month, load)) }}{% endmacro %}
{% macro default__merge_month(taxi, month, load) %}{{ tripdata_not_supported('merge_month') }}{% endmacro %}

{#- Asks the warehouse, not dbt's relation cache (these tables are made outside dbt's knowledge). -#}
{% macro relation_exists(relation) %}{{ return(adapter.dispatch('relation_exists', 'nyc_taxi')(relation)) }}{% endmacro %}
{% macro default__relation_exists(relation) %}{{ tripdata_not_supported('relation_exists') }}{% endmacro %}

{#- A string value as a SQL literal, quotes escaped the warehouse's way. -#}
{% macro sql_string(value) %}{{ return(adapter.dispatch('sql_string', 'nyc_taxi')(value)) }}{% endmacro %}
{% macro default__sql_string(value) %}
    {%- if value is none -%}{{ return('null') }}{%- endif -%}
    {{ return("'" ~ (value | string | replace('\x00', '') | replace("'", "''")) ~ "'") }}
{% endmacro %}
