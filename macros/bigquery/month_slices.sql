{#-
    BigQuery: how fact_trips and the mart replace the file months a build rebuilds.
    They are dbt-bigquery `insert_overwrite` incremental models (macros/analytics/month_slices.sql):
    dbt builds the batch into a temporary table, then replaces the target's partitions the batch
    holds. This body of that last step (dbt-bigquery calls it by name, so the project's wins) does
    it as the month merge does: one transaction that deletes those partitions and inserts the
    batch. The months are a script variable, so the delete reads those partitions only. dbt's own
    step (a MERGE after `set .. = (select as struct array_agg(distinct .. ignore nulls))`) does the
    same; this one also runs on the BigQuery emulator the tests use, so repeated builds are tested.
-#}

{% macro bq_dynamic_insert_overwrite_sql(tmp_relation, target_relation, sql, unique_key, partition_by, dest_columns, tmp_relation_exists, copy_partitions) %}
    {%- if copy_partitions -%}
        {{ exceptions.raise_compiler_error(target_relation ~ ": copy_partitions is not supported by this project's insert_overwrite") }}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for column in dest_columns -%}
        {%- do columns.append(adapter.quote(column.name)) -%}
    {%- endfor -%}
    {%- set partition = partition_by.render() -%}
    -- generated script to replace the partitions of {{ target_relation }} its batch holds
    declare partitions_to_replace array<{{ partition_by.data_type_for_partition() }}>;
    {% if not tmp_relation_exists %}
        {{ bq_create_table_as(partition_by, True, tmp_relation, sql, 'sql') }};
    {% endif %}
    set partitions_to_replace = (
        select array_agg(distinct {{ partition }})
        from {{ tmp_relation }}
        where {{ partition }} is not null
    );

    begin transaction;

    delete from {{ target_relation }}
    where {{ partition }} in unnest(partitions_to_replace);

    insert into {{ target_relation }} ({{ columns | join(', ') }})
    select
        {{ columns | join(',\n        ') }}
    from {{ tmp_relation }};

    commit transaction;

    drop table if exists {{ tmp_relation }}
{% endmacro %}
