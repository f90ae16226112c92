{#- Postgres: which server session a running load's life is tied to (see macros/common/ledger.sql). -#}

{% macro postgres__ledger_end_abandoned_loads(taxi, month, load_id) %}
    {%- do postgres_ledger_add_loader_columns() -%}
    {% call statement('ledger_end_abandoned', auto_begin=true) %}
        select pg_stat_clear_snapshot();
        update {{ ledger_relation() }} as l
        set state = 'failed', error = 'interrupted: the loader stopped before finishing', finished_at = now()
        where
            l.taxi = {{ sql_string(taxi) }}
            and l.file_month = cast('{{ month.first_day }}' as date)
            and l.load_id != {{ sql_string(load_id) }}
            and {{ load_is_abandoned('l') }}
    {% endcall %}
{% endmacro %}


{% macro postgres__load_is_abandoned(loads) %}
    ({{ loads }}.state = 'running' and {{ loads }}.loader_pid is not null and not exists (
        select from pg_stat_activity as sessions
        where sessions.pid = {{ loads }}.loader_pid and sessions.backend_start = {{ loads }}.loader_started_at
    ))
{%- endmacro %}


{% macro postgres__ledger_loader_columns(taxi, month, loader) %}
    {%- if loader == 'this session' -%}
        {%- set pid = 'pg_backend_pid()' -%}
    {%- elif loader == 'runner lock' -%}
        {#- the key of runner/warehouse.py runner_lock; advisory locks on two int4 keys show as classid, objid, 2 -#}
        {%- set pid = "(select lk.pid from pg_locks as lk where lk.locktype = 'advisory' and lk.granted"
            ~ " and lk.database = (select d.oid from pg_database as d where d.datname = current_database())"
            ~ " and lk.classid = hashtext(" ~ sql_string('tripdata-runner:' ~ taxi) ~ ")::oid"
            ~ " and lk.objid = " ~ month.yyyymm ~ " and lk.objsubid = 2 limit 1)" -%}
    {%- else -%}
        {{ return({}) }}
    {%- endif -%}
    {{ return({
        'loader_pid': pid,
        'loader_started_at': '(select sa.backend_start from pg_stat_activity as sa where sa.pid = ' ~ pid ~ ')',
    }) }}
{% endmacro %}


{% macro postgres_ledger_add_loader_columns() %}
    {#- Ledgers made before loads recorded their session get the two columns, once. -#}
    {%- set found = run_query(
        "select count(*) from pg_attribute where attrelid = " ~ sql_string(ledger_relation() | string)
        ~ "::regclass and attname = 'loader_pid' and not attisdropped"
    ) -%}
    {%- if found.rows[0][0] == 0 -%}
        {% call statement('ledger_loader_columns', auto_begin=true) %}
            alter table {{ ledger_relation() }}
            add column if not exists loader_pid integer,
            add column if not exists loader_started_at timestamptz;
            comment on column {{ ledger_relation() }}.loader_pid is
            'A running load''s server session (with loader_started_at): when it is gone, so is the loader';
        {% endcall %}
    {%- endif -%}
{% endmacro %}
