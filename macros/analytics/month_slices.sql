{#-
    fact_trips and dm_monthly_zone_revenue are built by file month: a build replaces whole file
    months (both service types), never single rows, and costs those months, not the history.
    Which months:
      - `--vars '{taxi: green, month: 2019-01}'` (a month's ingestion): that month;
      - `--vars '{refresh_months: [2019-01, 2019-02]}'` (the runner: the months it changed, and
        those whose models were behind the ledger): those;
      - neither (a plain `dbt build`): the months whose models are behind the ledger (a first build,
        or `--full-refresh`, takes every month).
    The same months scope the data tests (macros/tests/get_where_subquery.sql).
-#}

{% macro refresh_months() %}
    {#- The months named by vars, validated, as 'YYYY-MM-01' strings; none when no var names any. -#}
    {%- set months = [] -%}
    {%- if var('month', none) is not none -%}
        {%- do months.append(var('month')) -%}
    {%- endif -%}
    {%- set listed = var('refresh_months', []) -%}
    {%- if listed is string or listed is not iterable -%}
        {{ exceptions.raise_compiler_error("var refresh_months must be a list of months, like [2019-01, 2019-02]") }}
    {%- endif -%}
    {%- do months.extend(listed) -%}
    {%- if not months -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set first_days = [] -%}
    {%- for month in months -%}
        {%- set first_day = tripdata_month(month | string).first_day -%}
        {%- if first_day not in first_days -%}
            {%- do first_days.append(first_day) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(first_days | sort) }}
{% endmacro %}


{% macro month_slices_config(cluster_by, postgres='incremental') %}
    {#-
        Postgres: delete+insert keyed by file_month (one transaction, the month's rows found by
        index), or with postgres='view' a view (nothing to replace). BigQuery: insert_overwrite of
        the file_month partitions the batch holds (one MERGE). Both find the months in the batch at
        run time: configs are fixed when dbt parses, before the runner's per-call vars.
        A column added to a model is added to its table; a model built before it carried load_id
        is rebuilt whole by the next build that names no months.
    -#}
    {%- if target.type == 'bigquery' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': {'field': 'file_month', 'data_type': 'date'},
            'cluster_by': cluster_by,
            'on_schema_change': 'append_new_columns',
        }) }}
    {%- endif -%}
    {%- if postgres == 'view' -%}
        {{ return({'materialized': 'view'}) }}
    {%- endif -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert',
        'unique_key': 'file_month',
        'indexes': [{'columns': ['file_month']}],
        'on_schema_change': 'append_new_columns',
    }) }}
{% endmacro %}


{% macro in_file_months(column, months) -%}
    {#- `column in (..)` for months as 'YYYY-MM-01' strings (refresh_months validated them). -#}
    {{ column }} in ({% for m in months %}cast('{{ m }}' as date){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}


{% macro in_refresh_months(column='file_month') %}
    {#- The filter of an incremental build: the file months it replaces. -#}
    {%- set months = refresh_months() -%}
    {#- the taxi types the model holds: its tags (models/*/_*.yml) -#}
    {%- set taxis = tripdata_taxis() if 'every_taxi' in model.tags else model.tags | select('in', tripdata_taxis()) | list -%}
    {%- if months -%}
        {{ in_file_months(column, months) }}
    {%- elif 'load_id' not in adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {#- built before the models recorded their load: every month -#}
        true
    {%- else -%}
        {#- the months whose current load is not the one the model was built from -#}
        {{ column }} in (
            select loads.file_month
            from ({{ current_loads() }}) as loads
            where loads.taxi in ({% for taxi in taxis %}{{ sql_string(taxi) }}{{ ', ' if not loop.last }}{% endfor %})
                and not exists (
                    select 1 from {{ this }} as built
                    where built.load_id = loads.load_id
                )
        )
    {%- endif -%}
{% endmacro %}
