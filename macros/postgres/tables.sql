{#- Postgres: the main tables, the landing tables and the ledger. -#}

{% macro postgres__relation_exists(relation) %}
    {%- set found = run_query("select to_regclass(" ~ sql_string(relation | string) ~ ") is not null") -%}
    {{ return(found.rows[0][0]) }}
{% endmacro %}


{% macro row_id_index_first_column(main) %}
    {#- SQL: the first column of the main table's row-id index, by name (null when missing). -#}
    (
        select a.attname from pg_index as i
        inner join pg_attribute as a on i.indrelid = a.attrelid and i.indkey[0] = a.attnum
        where i.indexrelid = to_regclass({{ sql_string(adapter.quote(main.schema) ~ '.' ~ main.identifier ~ '_row_id') }})
    )
{%- endmacro %}


{% macro tripdata_column_ddl(spec, times_in_numeric=false) %}
    {#- The CSV columns plus unique_row_id, computed by Postgres as each row arrives. -#}
    {%- for column in spec.columns %}
    {{ column.name }} {{ tripdata_type(column.data_type) }},
    {%- endfor %}
    unique_row_id text collate "C" not null generated always as ({{ unique_row_id(spec, times_in_numeric) }}) stored
{%- endmacro %}


{% macro main_times_in_numeric(taxi) %}
    {#-
        Does the main table compute unique_row_id's times in numeric, as releases before 2026-12
        made it (the same ids, computed more slowly)? A month attaches only with its parent's very
        expression (Postgres 15), and a main table keeps the one it was made with: changing it would
        rewrite every month. So landing tables follow it. Read from the catalog without pg_get_expr,
        which would wait for any lock on the main table (another month's swap): only this release's
        expression has a CASE (the times' range).
    -#}
    {%- set found = run_query(
        "select position('{CASEEXPR' in cast(d.adbin as text)) = 0 from pg_attrdef as d"
        ~ " inner join pg_attribute as a on d.adrelid = a.attrelid and d.adnum = a.attnum"
        ~ " where d.adrelid = to_regclass(" ~ sql_string(tripdata_relation(taxi) | string) ~ ")"
        ~ " and a.attname = 'unique_row_id'"
    ) -%}
    {{ return(found.rows | length > 0 and found.rows[0][0]) }}
{%- endmacro %}


{% macro postgres__tripdata_prepare(taxi) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set main = tripdata_relation(taxi) -%}
    {#-
        Only when something is missing: even an `if not exists` on the partitioned table's index
        locks every partition, and would queue behind autovacuum on any of them.
    -#}
    {% call statement('tripdata_ready', fetch_result=true, auto_begin=true) %}
        select
            to_regclass({{ sql_string(main | string) }}) is not null
            and to_regclass({{ sql_string(ledger_relation() | string) }}) is not null
            and to_regnamespace({{ sql_string(adapter.quote(landing_schema())) }}) is not null
            and to_regprocedure({{ sql_string(month_lock_function() ~ '(text, integer)') }}) is not null
            and {{ row_id_index_first_column(main) }} = 'unique_row_id'
    {% endcall %}
    {%- set ready = load_result('tripdata_ready').table.rows[0][0] -%}
    {%- if ready -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do tripdata_begin() -%}
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
        -- one row per unique_row_id per file month, enforced by the database itself. The id first:
        -- building a month's index then sorts by the id's leading bytes, half the time it took
        -- behind file_month (one value per month). Main tables made before are rebuilt so, once.
        create unique index if not exists {{ main.identifier }}_row_id on {{ main }} (unique_row_id, file_month);
        do $row_id_index$ begin
            if {{ row_id_index_first_column(main) }} = 'file_month' then
                alter index {{ adapter.quote(main.schema) }}.{{ main.identifier }}_row_id rename to {{ main.identifier }}_row_id_by_month;
                create unique index {{ main.identifier }}_row_id on {{ main }} (unique_row_id, file_month);
                drop index {{ adapter.quote(main.schema) }}.{{ main.identifier }}_row_id_by_month;
            end if;
        end $row_id_index$;
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
            action text constraint load_ledger_action_check check (action in ('loaded', 'replaced', 'unchanged', 'removed')),
            error text,
            started_at timestamptz not null,
            finished_at timestamptz,
            loaded_by text not null,
            invocation_id text,
            -- a running load's server session: when it is gone, so is the loader (macros/postgres/ledger.sql)
            loader_pid integer,
            loader_started_at timestamptz
        );
        create index if not exists load_ledger_month on {{ ledger_relation() }} (taxi, file_month, finished_at);
        comment on table {{ ledger_relation() }} is 'Every attempt to load a taxi file month: what, from where, how many rows, and how it ended.';

        -- the month lock, one definition for the macros and for loaders that COPY themselves (the runner)
        create or replace function {{ month_lock_function() }}(taxi text, yyyymm integer) returns void
        language sql volatile as $$ select pg_advisory_xact_lock(hashtext('tripdata:' || taxi), yyyymm) $$;
        comment on function {{ month_lock_function() }}(text, integer) is
            'Locks a taxi file month (yyyymm, like 201901) until the transaction ends: loads, merges and removals of one month take turns.';
    {% endcall %}
    {%- do tripdata_commit() -%}
{% endmacro %}


{% macro postgres__create_landing_table(taxi, month) %}
    {#-
        Logged like every other table: nothing about loading is traded for durability.
        Named like the month's partition, so merging it is a rename, not a copy.
    -#}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- do lock_month(taxi, month) -%}  {#- concurrent `create .. if not exists` of one name can collide -#}
    {% call statement('create_landing_table', auto_begin=true) %}
        create table if not exists {{ landing }} ({{ landing_table_ddl(taxi, month) }});
    {% endcall %}
{% endmacro %}


{% macro landing_table_ddl(taxi, month) %}
    {#- file_month is the month's constant, so COPY fills it in, checked row by row as COPY writes:
        attaching the month then needs no scan. The check has the landing table's name, whatever
        the table's (incoming_relation is renamed to it). -#}
    {{ tripdata_column_ddl(tripdata_spec(taxi), main_times_in_numeric(taxi)) }},
    file_month date not null default '{{ month.first_day }}'
        constraint {{ landing_relation(taxi, month).identifier }}_file_month check (file_month = '{{ month.first_day }}')
{%- endmacro %}


{% macro postgres__create_incoming_table(taxi, month, load_id) %}
    {#- Made anew for each load (the caller holds the month lock): an earlier load's rows never count. -#}
    {%- set incoming = incoming_relation(taxi, month) -%}
    {% call statement('create_incoming_table', auto_begin=true) %}
        drop table if exists {{ incoming }};
        create table {{ incoming }} ({{ landing_table_ddl(taxi, month) }});
        comment on table {{ incoming }} is {{ sql_string('load ' ~ load_id) }};
    {% endcall %}
{% endmacro %}


{% macro postgres__adopt_incoming(taxi, month, load_id) %}
    {#-
        Under the month lock, in the merge's transaction: the load's own table becomes the month's
        landing table (what was there is replaced, as a loader's COPY replaces it). Only the table
        this load made: its comment names the load.
    -#}
    {%- set incoming = incoming_relation(taxi, month) -%}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- set made_for = run_query(
        "select obj_description(to_regclass(" ~ sql_string(incoming | string) ~ "), 'pg_class')"
    ).rows[0][0] -%}
    {%- if made_for != 'load ' ~ load_id -%}
        {{ exceptions.raise_compiler_error(
            tripdata_file_label(taxi, month) ~ ": load " ~ load_id ~ " has no table of its own to merge ("
            ~ incoming ~ (" belongs to " ~ made_for if made_for else " is missing") ~ "): nothing was loaded"
        ) }}
    {%- endif -%}
    {% call statement('adopt_incoming', auto_begin=true) %}
        drop table if exists {{ landing }};
        alter table {{ incoming }} rename to {{ adapter.quote(landing.identifier) }};
        comment on table {{ landing }} is null;
    {% endcall %}
{% endmacro %}


{% macro postgres__landed_file(taxi, month) %}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- if relation_exists(landing) and run_query("select exists (select from " ~ landing ~ ")").rows[0][0] -%}
        {{ return({'loaded_by': 'dbt landing table', 'source_url': none}) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}


{% macro month_lock_function() %}
    {#- runner/warehouse.py calls it by this name in the target schema, before its COPY. -#}
    {{ return(adapter.quote(target.schema) ~ '.tripdata_lock_month') }}
{% endmacro %}


{% macro postgres__lock_month(taxi, month, load_id) %}
    {% call statement('lock_month', auto_begin=true) %}
        select {{ month_lock_function() }}({{ sql_string(taxi) }}, {{ month.yyyymm }});
    {% endcall %}
{% endmacro %}
