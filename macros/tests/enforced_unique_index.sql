{#-
    Postgres: the model is a table with a valid unique index on exactly `columns`, in that order: the
    database enforces the key itself, and this test checks that it does (a missing or invalid index
    is one failing row). It reads the catalog, not the rows. On a partitioned table the index is
    valid once every partition has its part.
-#}
{% test enforced_unique_index(model, columns) %}
    {%- set wanted = [] -%}
    {%- for column in columns -%}
        {%- do wanted.append(sql_string(column)) -%}
    {%- endfor -%}
    with unique_indexes as (
        select
            indexes.indexrelid,
            array(
                select columns.attname::text
                from unnest(indexes.indkey) with ordinality as keys (attnum, position)
                inner join pg_attribute as columns
                    on indexes.indrelid = columns.attrelid and keys.attnum = columns.attnum
                order by keys.position
            ) as index_columns
        from pg_index as indexes
        where
            indexes.indrelid = to_regclass({{ sql_string(model | string) }})
            and indexes.indisunique
            and indexes.indisvalid
    )

    select {{ sql_string(columns | join(', ')) }} as key_without_its_unique_index
    where not exists (
        select from unique_indexes
        where index_columns = array[{{ wanted | join(', ') }}]::text []
    )
{% endtest %}
