-- The key of the main tables, which staging and fact_trips inherit (they are one row per main-table
-- row: the reconciliation test counts them): one row per unique_row_id per file month.
-- Postgres enforces it with a unique index on (file_month, unique_row_id) of each main table, made
-- with the table (macros/postgres/tables.sql) and inherited by every month's partition: checked
-- here in the catalog, at no cost per row. BigQuery enforces no key: the rows of the months a build
-- refreshed are counted.
{%- set months = refresh_months() %}
{%- set main_tables = [ref('green_tripdata'), ref('yellow_tripdata')] %}

{% if target.type == 'postgres' -%}

with

main_tables as (
    {%- for table in main_tables %}
        select {{ sql_string(table.identifier) }} as main_table, to_regclass({{ sql_string(table | string) }}) as table_oid
        {{- '\n        union all' if not loop.last }}
    {%- endfor %}

),

enforcing_indexes as (

    select pg_index.indrelid as table_oid
    from pg_index
    where
        pg_index.indisunique
        and pg_index.indisvalid
        and pg_index.indnkeyatts = 2
        and (
            select array_agg(pg_attribute.attname::text order by pg_attribute.attname)
            from pg_attribute
            where pg_attribute.attrelid = pg_index.indrelid and pg_attribute.attnum = any(pg_index.indkey)
        ) = array['file_month', 'unique_row_id']

)

select main_tables.main_table, 'no unique index on (file_month, unique_row_id)' as problem
from main_tables
where
    main_tables.table_oid is not null  -- a main table not made yet holds no rows
    and not exists (select 1 from enforcing_indexes where enforcing_indexes.table_oid = main_tables.table_oid)

{%- else -%}

{#- a main table not made yet (a dataset where only green was loaded so far) holds no rows -#}
{%- set made_tables = [] -%}
{%- for table in main_tables if execute and relation_exists(table) -%}
    {%- do made_tables.append(table) -%}
{%- endfor %}

with

repeated_ids as (
    {%- for table in made_tables %}
        select {{ sql_string(table.identifier) }} as main_table, file_month, unique_row_id, count(*) as rows_with_this_id
        from {{ table }}
        {%- if months %}
            where {{ in_file_months('file_month', months) }}
        {%- endif %}
        group by file_month, unique_row_id
        having count(*) > 1
        {{- '\n        union all' if not loop.last }}
    {%- else %}
        select
            cast(null as string) as main_table,
            cast(null as date) as file_month,
            cast(null as string) as unique_row_id,
            0 as rows_with_this_id
        limit 0
    {%- endfor %}

)

select * from repeated_ids

{%- endif %}
