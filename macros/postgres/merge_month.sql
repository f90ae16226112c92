{#-
    Postgres month merge. The landing table already is the month's partition in waiting:
    typed columns, unique_row_id computed while COPY ran. Merging it costs one pass over the
    month, never over the months already loaded:
      1. count rows and out-of-month pickups (one scan);
      2. add filename and load_id as constant-default columns (catalog only, no rewrite);
      3. build the month's unique index; if that finds repeated ids, keep the smallest row of each
         id (its CSV columns compared in file order, NULLs first: a rule that needs no file order,
         so BigQuery keeps the same row), count exact repeats and same-id variants, drop the rest,
         build it again;
      4. swap: drop the old partition, move the landing table in, attach it (its file_month CHECK,
         checked as COPY wrote the rows, proves the partition bound: no scan).
    All in the caller's transaction, under the month lock: until it commits, readers see the
    old month; if anything fails, nothing changes.
-#}

{% macro postgres__merge_month(taxi, month, load) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- set main = tripdata_relation(taxi) -%}
    {%- set partition = month_partition_relation(taxi, month) -%}
    {%- set pickup = spec.pickup_column -%}

    {%- set counts = run_query(
        "select count(*), count(*) filter (where " ~ pickup ~ " < '" ~ month.first_day ~ "' or "
        ~ pickup ~ " >= '" ~ month.next_first_day ~ "') from " ~ landing
    ).rows[0] -%}
    {%- set rows_in_file, pickups_outside_month = counts[0] | int, counts[1] | int -%}
    {%- do check_file_rows(taxi, month, landing, rows_in_file, pickups_outside_month) -%}

    {% call statement('month_columns', auto_begin=true) %}
        set local maintenance_work_mem = {{ sql_string(var('month_index_memory')) }};
        alter table {{ landing }}
            add column filename text not null default {{ sql_string(load.filename) }},
            add column load_id text not null default {{ sql_string(load.load_id) }};
    {% endcall %}

    {#- The index doubles as the duplicate check: most files have no repeated ids. -#}
    {%- set index_name = partition.identifier ~ '_row_id' -%}
    {%- set create_index = "create unique index " ~ index_name ~ " on " ~ landing ~ " (unique_row_id, file_month)" -%}
    {% call statement('month_index', auto_begin=true) %}
        do $index$ begin
            execute {{ sql_string(create_index) }};
        exception when unique_violation then
            null;  -- repeated ids: collapsed below
        end $index$;
    {% endcall %}

    {%- set repeats = {'exact': 0, 'variants': 0} -%}
    {%- if not relation_exists(api.Relation.create(schema=landing.schema, identifier=index_name)) -%}
        {#-
            Repeated ids: find them by sorting the hashes of all ids, then sort only their rows.
            Kept: the smallest row of each id, its CSV columns compared in file order as typed
            values, NULLs first, text bytewise. No file order involved (BigQuery has none), so
            both warehouses keep the same row. The ctid only names the rows to delete.
            Counted, whatever the order: rows equal to another row of the id (typed: .5 = 0.50)
            are exact repeats, rows - distinct rows per id; the other distinct rows beyond the
            first are same-id variants. Equal rows are peers in the window's order: rank()
            numbers a peer group by its first row, so row_number() > rank() marks a repeat.
            Which of equal rows stays is left open: they hold the same values (a numeric's
            scale may differ: 0.50 or .5). nyc_taxi_later_rows: the rows after each id's first.
        -#}
        {%- set row_order = [] -%}
        {%- for column in spec.columns -%}
            {%- do row_order.append(
                column.name ~ (' collate "C"' if column.data_type == 'text' else '') ~ ' asc nulls first'
            ) -%}
        {%- endfor -%}
        {% call statement('find_repeated_ids', fetch_result=true, auto_begin=true) %}
            -- repeated ids found by sorting their 64-bit hashes: a hash aggregate of the hashes took 7.8 s
            -- on 7.6M rows and one of the ids 17 s (bench/). A hash two different ids share only makes
            -- both candidates: the window below, by the ids themselves, keeps both.
            -- The sort runs in 2 workers and the leader, whose sorted runs one aggregate reads: 3M rows
            -- 0.95 s, against 1.25 s serially and 1.15 s as the planner would have it without the
            -- subquery (each worker aggregates its own rows, and the leader all their groups again).
            -- Parallel plans for this and the scan below even where the planner prices them above
            -- serial ones, which take longer on 2 cores (the scan for the rows of the repeated ids, 3M:
            -- 0.45 s serially, 0.28 s). Reset once the rows are collapsed.
            set local enable_hashagg = off;
            set local work_mem = {{ sql_string(var('month_index_memory')) }};
            set local parallel_setup_cost = 0;
            set local parallel_tuple_cost = 0;
            create temporary table nyc_taxi_repeated_ids on commit drop as
            select id_hash
            from (
                select hashtextextended(unique_row_id, 0) as id_hash
                from {{ landing }}
                order by id_hash
            ) as sorted_hashes
            group by id_hash
            having count(*) > 1;
            select case when count(*) <= {{ var('repeated_ids_inline_limit') | int }} then cast(array_agg(id_hash) as text) end
            from nyc_taxi_repeated_ids;
        {% endcall %}
        {#-
            The few hashes of a usual month are written into the query as a constant array: its scan
            then runs in parallel workers (they cannot read a temporary table) and probes a hash
            table (3M rows: 0.3 s against 0.6-0.9 s). Past the limit it reads them from the table.
        -#}
        {%- set inline_hashes = load_result('find_repeated_ids').table.rows[0][0] -%}
        {%- if inline_hashes is none -%}
            {%- set is_repeated = "in (select id_hash from nyc_taxi_repeated_ids)" -%}
        {%- else -%}
            {%- set is_repeated = "= any (cast(" ~ sql_string(inline_hashes) ~ " as bigint[]))" -%}
        {%- endif -%}
        {% call statement('collapse_repeats', fetch_result=true, auto_begin=true) %}
            create temporary table nyc_taxi_later_rows on commit drop as
            with repeated_rows as (
                select
                    ctid as row_ctid,
                    row_number() over same_id as place_in_id,
                    rank() over same_id as first_equal_place
                from {{ landing }}
                where hashtextextended(unique_row_id, 0) {{ is_repeated }}
                window same_id as (partition by unique_row_id order by {{ row_order | join(', ') }})
            )
            select
                row_ctid,
                place_in_id > first_equal_place as is_exact
            from repeated_rows
            where place_in_id > 1;

            delete from {{ landing }} where ctid = any (array(select row_ctid from nyc_taxi_later_rows));
            {{ create_index }};
            reset enable_hashagg;
            reset work_mem;
            reset parallel_setup_cost;
            reset parallel_tuple_cost;
            select count(*) filter (where is_exact), count(*) filter (where not is_exact) from nyc_taxi_later_rows;
        {% endcall %}
        {%- set found = load_result('collapse_repeats').table.rows[0] -%}
        {%- do repeats.update({'exact': found[0] | int, 'variants': found[1] | int}) -%}
    {%- endif -%}

    {%- set replacing = relation_exists(partition) -%}
    {%- set plan = [
        "drop table if exists " ~ partition,
        "alter table " ~ landing ~ " set schema " ~ adapter.quote(main.schema),
        "alter table " ~ main ~ " attach partition " ~ partition
            ~ " for values from ('" ~ month.first_day ~ "') to ('" ~ month.next_first_day ~ "')",
        "alter table " ~ partition ~ " drop constraint " ~ partition.identifier ~ "_file_month,"
            ~ " alter column file_month drop default, alter column filename drop default, alter column load_id drop default",
    ] -%}
    {%- for statement_sql in plan -%}
        {{ log(taxi ~ ' ' ~ month.month ~ ': ' ~ loop.index ~ ' of ' ~ plan | length ~ ': ' ~ statement_sql) }}
        {%- do run_query(statement_sql) -%}
    {%- endfor -%}

    {%- set collapsed = repeats.exact + repeats.variants -%}
    {{ return({
        'rows_in_file': rows_in_file,
        'rows_loaded': rows_in_file - collapsed,
        'repeats_collapsed': collapsed,
        'exact_repeats': repeats.exact,
        'same_id_variants': repeats.variants,
        'pickups_outside_month': pickups_outside_month,
        'action': 'replaced' if replacing else 'loaded',
    }) }}
{% endmacro %}
