{#- Postgres: the main tables, the landing tables and the ledger. -#}

{% macro postgres__relation_exists(relation) %}
    {%- set found = run_query("select to_regclass(" ~ sql_string(relation | string) ~ ") is not null") -%}
    {{ return(found.rows[0][0]) }}
{% endmacro %}


{% macro tripdata_column_ddl(spec) %}
    {#- The CSV columns plus unique_row_id, computed by Postgres as each row arrives. -#}
    {%- for column in spec.columns %}
    {{ column.name }} {{ tripdata_type(column.data_type) }},
    {%- endfor %}
    unique_row_id text collate "C" not null generated always as ({{ unique_row_id(spec) }}) stored
{%- endmacro %}


{% macro postgres__tripdata_prepare(taxi) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set main = tripdata_relation(taxi) -%}
    {% call statement('tripdata_prepare', auto_begin=true) %}
        -- two first loads at once must not race on catalog rows
        select pg_advisory_xact_lock(hashtext('nyc_taxi:prepare'));
        create schema if not exists {{ adapter.quote(target.schema) }};
        create schema if not exists {{ adapter.quote(landing_schema()) }};

        create table if not exists {{ main }} (
            {{ tripdata_column_ddl(spec) }},
            file_month date not null,
            filename text not null,
            load_id text not null
        ) partition by range (file_month);
        -- one row per unique_row_id per file month, enforced by the database itself
        create unique index if not exists {{ main.identifier }}_row_id on {{ main }} (file_month, unique_row_id);
        comment on table {{ main }} is
            'NYC TLC {{ taxi }} trips, one partition per file month (the month of the file a row came from). Loaded by nyc_taxi macros: see load_ledger.';

        create table if not exists {{ ledger_relation() }} (
            load_id text primary key,
            taxi text not null,
            file_month date not null,
            filename text not null,
            source_url text,
            bytes bigint,
            checksum text,
            rows_in_file bigint,
            rows_loaded bigint,
            repeats_collapsed bigint,
            exact_repeats bigint,
            same_id_variants bigint,
            pickups_outside_month bigint,
            state text not null check (state in ('running', 'succeeded', 'failed')),
            action text check (action in ('loaded', 'replaced', 'unchanged')),
            error text,
            started_at timestamptz not null,
            finished_at timestamptz,
            loaded_by text not null,
            invocation_id text
        );
        create index if not exists load_ledger_month on {{ ledger_relation() }} (taxi, file_month, finished_at);
        comment on table {{ ledger_relation() }} is 'Every attempt to load a taxi file month: what, from where, how many rows, and how it ended.';
    {% endcall %}
{% endmacro %}


{% macro postgres__create_landing_table(taxi, month) %}
    {#-
        Logged like every other table: nothing about loading is traded for durability.
        Named like the month's partition, so merging it is a rename, not a copy.
    -#}
    {% call statement('create_landing_table', auto_begin=true) %}
        create table if not exists {{ landing_relation(taxi, month) }} (
            {{ tripdata_column_ddl(tripdata_spec(taxi)) }}
        );
    {% endcall %}
{% endmacro %}


{% macro postgres__landing_has_rows(taxi, month) %}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- if not relation_exists(landing) -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(run_query("select exists (select from " ~ landing ~ ")").rows[0][0]) }}
{% endmacro %}


{% macro postgres__lock_month(taxi, month) %}
    {#- The runner takes the same lock around its COPY (runner/warehouse.py: month_lock_key). -#}
    {% call statement('lock_month', auto_begin=true) %}
        select pg_advisory_xact_lock(hashtext({{ sql_string('tripdata:' ~ taxi) }}), {{ month.yyyymm }});
    {% endcall %}
{% endmacro %}
