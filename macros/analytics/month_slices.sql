{#-
    fact_trips and dm_monthly_zone_revenue are incremental by file month: a build replaces whole
    file months (both service types), never single rows. Which months:
      - `--vars '{taxi: green, month: 2019-01}'` (a month's ingestion): that month;
      - `--vars '{refresh_months: [2019-01, 2019-02]}'` (the runner, after loading them): those;
      - neither: the months loaded since the model was last built, from the ledger (a first build,
        or `--full-refresh`, takes every month).
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


{% macro month_slices_config(cluster_by) %}
    {#-
        Postgres: delete+insert keyed by file_month (one transaction). BigQuery: insert_overwrite of
        the file_month partitions the batch holds (one MERGE). Both find the months in the batch at
        run time: configs are fixed when dbt parses, before the runner's per-call vars.
    -#}
    {%- if target.type == 'bigquery' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': {'field': 'file_month', 'data_type': 'date'},
            'cluster_by': cluster_by,
        }) }}
    {%- endif -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert',
        'unique_key': 'file_month',
        'indexes': [{'columns': ['file_month']}],
    }) }}
{% endmacro %}


{% macro in_file_months(column, months) -%}
    {#- `column in (..)` for months as 'YYYY-MM-01' strings (refresh_months validated them). -#}
    {{ column }} in ({% for m in months %}cast('{{ m }}' as date){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}


{% macro in_refresh_months(column='file_month') %}
    {#- The filter of an incremental build: the file months it replaces. -#}
    {%- set months = refresh_months() -%}
    {%- if months -%}
        {{ in_file_months(column, months) }}
    {%- else -%}
        {{ column }} in (
            select loads.file_month
            from {{ source('ingestion', 'load_ledger') }} as loads
            where loads.state = 'succeeded' and loads.action in ('loaded', 'replaced')
                and loads.finished_at > (
                    select coalesce(max(built.loaded_at), cast('1970-01-01' as timestamp)) from {{ this }} as built
                )
        )
    {%- endif -%}
{% endmacro %}
