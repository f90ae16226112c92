{#-
    Removing a file month: `dbt run-operation tripdata_remove_month --args '{taxi: green, month: "2020-11"}'`
    (what `runner remove` runs). The month's rows leave the main table and the models in one
    transaction, and the ledger records it: a succeeded load with action `removed`. The month is then
    not loaded (a later run loads it as new), and its failed attempts no longer show. A month that
    holds no rows (only failures) gets the same record: that clears them.
-#}

{% macro tripdata_remove_month(taxi, month, load_id=none, reason=none, removed_by='dbt run-operation') %}
    {%- set taxi = validate_taxi(taxi) -%}
    {%- set args = tripdata_month(month) -%}
    {%- set load_id = load_id or invocation_id -%}
    {%- do validate_load_id(load_id) -%}
    {%- do tripdata_prepare(taxi) -%}
    {%- do ledger_allow_removed() -%}
    {%- set current = ledger_current_load(taxi, args) -%}
    {%- set models = [] -%}
    {%- for name in ['fact_trips', 'dm_monthly_zone_revenue'] -%}
        {%- set relation = adapter.get_relation(ref(name).database, ref(name).schema, ref(name).identifier) -%}
        {%- if relation is not none and relation.is_table -%}{%- do models.append(relation) -%}{%- endif -%}
    {%- endfor -%}
    {%- do remove_month_rows(taxi, args, load_id, current, models, {
        'filename': tripdata_filename(taxi, args), 'source_url': none, 'bytes': none, 'checksum': none,
        'loaded_by': removed_by, 'error': reason,
    }) -%}
    {{ log(taxi ~ ' ' ~ args.month ~ ': removed' ~ (' (' ~ current.rows_loaded ~ ' rows of load ' ~ current.load_id ~ ')' if current else ': it held no rows') ~ '; load ' ~ load_id, info=true) }}
{% endmacro %}


{% macro remove_month_rows(taxi, month, load_id, current, models, info) %}
    {{ return(adapter.dispatch('remove_month_rows', 'nyc_taxi')(taxi, month, load_id, current, models, info)) }}
{% endmacro %}


{% macro postgres__remove_month_rows(taxi, month, load_id, current, models, info) %}
    {#- The month's partition goes whole; the models' tables lose the rows of the month's load. -#}
    {%- do tripdata_begin() -%}
    {%- do lock_month(taxi, month) -%}
    {%- do ledger_insert_running(taxi, month, load_id, info) -%}
    {% call statement('remove_month', auto_begin=true) %}
        drop table if exists {{ month_partition_relation(taxi, month) }};
        {{ remove_month_record_sql(load_id, current, models, info) }}
    {% endcall %}
    {%- do tripdata_commit() -%}
{% endmacro %}


{% macro bigquery__remove_month_rows(taxi, month, load_id, current, models, info) %}
    {#- One script, one transaction: the month's partition, the models' rows, the ledger. -#}
    {%- do ledger_insert_running(taxi, month, load_id, info) -%}
    {%- do lock_month(taxi, month, load_id) -%}
    {% call statement('remove_month') %}
        begin transaction;
        delete from {{ tripdata_relation(taxi) }} where file_month = date '{{ month.first_day }}';
        {{ remove_month_record_sql(load_id, current, models, info) }}
        commit transaction;
    {% endcall %}
{% endmacro %}


{% macro remove_month_record_sql(load_id, current, models, info) %}
    {#- Both warehouses, after the month's rows: the models lose the rows of its load, the ledger records the removal. -#}
    {%- if current is not none %}
        {%- for model in models %}
    delete from {{ model }} where load_id = {{ sql_string(current.load_id) }};
        {%- endfor %}
    {%- endif %}
    {{ ledger_finish_sql(load_id, {'action': 'removed', 'rows_loaded': 0}) }};
    update {{ ledger_relation() }} set error = {{ sql_string(info.error) }} where load_id = {{ sql_string(load_id) }};
{%- endmacro %}


{% macro ledger_allow_removed() %}
    {{ return(adapter.dispatch('ledger_allow_removed', 'nyc_taxi')()) }}
{% endmacro %}
{% macro default__ledger_allow_removed() %}{% endmacro %}
{% macro postgres__ledger_allow_removed() %}
    {#- Ledgers made before months could be removed check `action` against a shorter list: widen it, once. -#}
    {%- set found = run_query(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid = " ~ sql_string(ledger_relation() | string)
        ~ "::regclass and conname = 'load_ledger_action_check'"
    ) -%}
    {%- if found.rows | length and 'removed' not in found.rows[0][0] -%}
        {% call statement('ledger_allow_removed', auto_begin=true) %}
            alter table {{ ledger_relation() }} drop constraint load_ledger_action_check,
            add constraint load_ledger_action_check check (action in ('loaded', 'replaced', 'unchanged', 'removed'))
        {% endcall %}
        {%- do tripdata_commit() -%}
    {%- endif -%}
{% endmacro %}
