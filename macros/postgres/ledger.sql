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
    {#-
        loader: 'this session' (dbt alone), or the session a loader holds across its steps as the
        runner names it (runner/warehouse.py runner_lock): {'pid': .., 'started_at': ..}.
    -#}
    {%- if loader == 'this session' -%}
        {{ return({
            'loader_pid': 'pg_backend_pid()',
            'loader_started_at': '(select sa.backend_start from pg_stat_activity as sa where sa.pid = pg_backend_pid())',
        }) }}
    {%- elif loader is mapping -%}
        {%- set pid, started_at = loader.get('pid'), loader.get('started_at') -%}
        {%- if pid is not number or pid != pid | int
            or started_at is not string
            or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+([+-][0-9:]+)?$', started_at) -%}
            {{ exceptions.raise_compiler_error(
                "loader " ~ (loader | string) ~ " must name a server session: {pid: <integer>, started_at: <timestamp>}"
            ) }}
        {%- endif -%}
        {{ return({'loader_pid': pid | int, 'loader_started_at': "cast('" ~ started_at ~ "' as timestamptz)"}) }}
    {%- endif -%}
    {{ return({}) }}
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
