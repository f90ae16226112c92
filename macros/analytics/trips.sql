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


{% macro revenue_column(amount) -%}
    {#- The mart's column summing an amount: revenue_monthly_fare, revenue_monthly_tip_amount, ... -#}
    revenue_monthly_{{ amount | replace('fare_amount', 'fare') }}
{%- endmacro %}


{% macro trip_totals(relation, months, trips='count(*)', amount_column=none) %}
    {#-
        Trips and the sum of every amount per service type and file month, in the given months
        (all when none). amount_column maps an amount to the relation's column for it (the mart).
    -#}
    select
        service_type,
        file_month,
        {{ trips }} as trips,
        {%- for amount in trip_amount_columns() %}
            coalesce(sum({{ amount_column(amount) if amount_column else amount }}), 0) as {{ amount }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation }}
    {%- if months %}
        where {{ in_file_months('file_month', months) }}
    {%- endif %}
    group by service_type, file_month
{%- endmacro %}


{% macro trip_totals_mismatches(layer, next_layer) %}
    {#- Rows of two trip_totals CTEs that disagree, or that only one of them has. -#}
    select
        {{ sql_string(layer) }} as layer,
        {{ sql_string(next_layer) }} as next_layer,
        coalesce({{ layer }}.service_type, {{ next_layer }}.service_type) as service_type,
        coalesce({{ layer }}.file_month, {{ next_layer }}.file_month) as file_month,
        {{ layer }}.trips as trips_in_layer,
        {{ next_layer }}.trips as trips_in_next_layer
    from {{ layer }}
    full outer join {{ next_layer }}
        on {{ layer }}.service_type = {{ next_layer }}.service_type and {{ layer }}.file_month = {{ next_layer }}.file_month
    where
        {{ layer }}.trips is distinct from {{ next_layer }}.trips
        {%- for amount in trip_amount_columns() %}
            or {{ layer }}.{{ amount }} is distinct from {{ next_layer }}.{{ amount }}
        {%- endfor %}
{%- endmacro %}
