{% macro tripdata_month_select(taxi) %}
{#-
    What a month adds to the main table, as SQL: the landing table's rows with their id and
    provenance. Postgres computes the same columns in place (the landing table becomes the
    partition); this select is the compiled documentation of that, and validates the vars.
-#}
{%- set landing = source('landing', taxi ~ '_tripdata') -%}
{%- if execute -%}
{%- set month = tripdata_month_vars(taxi) -%}
{%- set spec = tripdata_spec(taxi) -%}

select
{%- for column in spec.columns %}
    {{ column.name }},
{%- endfor %}
    {{ unique_row_id(spec) }} as unique_row_id,
    cast('{{ month.first_day if month else var("first_month") ~ "-01" }}' as date) as file_month,
    {{ sql_string(month.filename if month else '') }} as filename,
    {{ sql_string(var('load_id', invocation_id) | string) }} as load_id
from {{ landing_relation(taxi, month) if month else landing }}
{% endif -%}
{% endmacro %}
