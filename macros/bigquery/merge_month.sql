{#-
    BigQuery month merge: the month is one partition of the main table, replaced whole.
      1. one query over the landing table: rows, distinct rows, distinct ids, out-of-month pickups;
      2. one transaction (a multi-statement script): delete the month's partition (the filter names
         the partition, so no other month is read), insert the landing rows with their
         unique_row_id, one row per id (the smallest, comparing the CSV columns in file order,
         NULLs first: the rule Postgres applies too), and finish the load in the ledger;
      3. drop the landing table.
    Bytes read per month: the landing table twice, the ledger, never another month's partition.
-#}

{% macro bigquery__merge_month(taxi, month, load) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- set main = tripdata_relation(taxi) -%}
    {%- set csv_columns = spec.columns | map(attribute='name') | list -%}
    {%- set file_month = "date '" ~ month.first_day ~ "'" -%}
    {%- set replacing = ledger_current_load(taxi, month) is not none -%}

    {% call statement('month_counts', fetch_result=true) %}
        with distinct_rows as (
            select
                {{ csv_columns | join(',\n                ') }},
                count(*) as copies
            from {{ landing }}
            group by {{ csv_columns | join(', ') }}
        )

        select
            coalesce(sum(copies), 0) as rows_in_file,
            count(*) as distinct_rows,
            count(distinct {{ unique_row_id(spec) }}) as distinct_ids,
            coalesce(sum(if(
                {{ spec.pickup_column }} < datetime '{{ month.first_day }}'
                or {{ spec.pickup_column }} >= datetime '{{ month.next_first_day }}', copies, 0
            )), 0) as pickups_outside_month
        from distinct_rows
    {% endcall %}
    {%- set found = load_result('month_counts').table.rows[0] -%}
    {%- set rows_in_file, distinct_rows, distinct_ids = found[0] | int, found[1] | int, found[2] | int -%}
    {%- do check_file_rows(taxi, month, landing, rows_in_file, found[3] | int) -%}
    {%- set counts = {
        'rows_in_file': rows_in_file,
        'rows_loaded': distinct_ids,
        'repeats_collapsed': rows_in_file - distinct_ids,
        'exact_repeats': rows_in_file - distinct_rows,
        'same_id_variants': distinct_rows - distinct_ids,
        'pickups_outside_month': found[3] | int,
        'action': 'replaced' if replacing else 'loaded',
    } -%}

    {% call statement('merge_month') %}
        begin transaction;

        delete from {{ main }}
        where file_month = {{ file_month }};

        insert into {{ main }} ({{ csv_columns | join(', ') }}, unique_row_id, file_month, filename, load_id)
        with landed as (
            select
                *,
                {{ unique_row_id(spec) }} as unique_row_id
            from {{ landing }}
        )

        select
            {{ csv_columns | join(',\n            ') }},
            unique_row_id,
            {{ file_month }} as file_month,
            {{ sql_string(load.filename) }} as filename,
            {{ sql_string(load.load_id) }} as load_id
        from landed
        where true
        qualify row_number() over (
            partition by unique_row_id
            order by {{ csv_columns | join(' asc nulls first, ') }} asc nulls first
        ) = 1;

        {{ ledger_finish_sql(load.load_id, counts) }};

        commit transaction;
    {% endcall %}
    {%- do discard_landing(taxi, month) -%}
    {%- do counts.update({'ledger_finished': true}) -%}
    {{ return(counts) }}
{% endmacro %}
