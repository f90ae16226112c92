{#-
    dbt wraps the model a generic test checks in this macro; the test's `where` config filters it.
    The token __refresh_months__ (dbt_project.yml sets it for every test of the project) stands for
    the file months the build refreshes (macros/analytics/month_slices.sql refresh_months): a
    runner build, or a month's own build, tests those months, and its cost follows them, not the
    history. A plain `dbt build` names no months: it tests everything. Relations without a
    file_month column (the zones) are always tested whole.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__refresh_months__' in where -%}
        {%- set months = refresh_months() if execute else none -%}
        {%- set by_month = months and 'file_month' in adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
        {%- set where = where | replace('__refresh_months__', in_file_months('file_month', months) if by_month else '1 = 1') -%}
    {%- endif -%}
    {%- if where -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}
