{#- Helpers of the staging and core models, in SQL both warehouses accept. -#}

{% macro payment_type_description(column) -%}
    case {{ column }}
            when 1 then 'Credit card'
            when 2 then 'Cash'
            when 3 then 'No charge'
            when 4 then 'Dispute'
            when 5 then 'Unknown'
            when 6 then 'Voided trip'
            else 'Not recorded'
        end
{%- endmacro %}


{% macro trip_amount_columns() %}
    {#- The money columns of a trip, in the order the mart sums them. -#}
    {{ return([
        'fare_amount', 'extra', 'mta_tax', 'tip_amount', 'tolls_amount', 'ehail_fee',
        'improvement_surcharge', 'congestion_surcharge', 'total_amount',
    ]) }}
{% endmacro %}


{% macro any_negative(columns) %}
    {#- True when any of the columns is below zero (NULLs are not negative). -#}
    ({% for column in columns %}coalesce({{ column }} < 0, false){{ ' or ' if not loop.last }}{% endfor %})
{%- endmacro %}


{#- The first day of the month of a timestamp, as a date. -#}
{% macro month_start(column) %}{{ return(adapter.dispatch('month_start', 'nyc_taxi')(column)) }}{% endmacro %}

{% macro default__month_start(column) %}cast(date_trunc('month', {{ column }}) as date){% endmacro %}

{% macro bigquery__month_start(column) %}date_trunc(date({{ column }}), month){% endmacro %}
