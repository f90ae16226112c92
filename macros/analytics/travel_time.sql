{#- Durations: a trip's travel time in seconds and exact percentiles of it (the fhv models), a load's seconds (the report). -#}

{% macro trip_duration_seconds(pickup, dropoff) %}
    {{- return(adapter.dispatch('trip_duration_seconds', 'nyc_taxi')(pickup, dropoff)) -}}
{% endmacro %}

{% macro default__trip_duration_seconds(pickup, dropoff) -%}
    cast(extract(epoch from ({{ dropoff }} - {{ pickup }})) as bigint)
{%- endmacro %}

{% macro bigquery__trip_duration_seconds(pickup, dropoff) -%}
    datetime_diff({{ dropoff }}, {{ pickup }}, second)
{%- endmacro %}


{% macro longest_plausible_trip_seconds() %}
    {#- A trip that ends before it starts, or more than a day after, is not a travel time (year 3019 is reported). -#}
    {{- return(86400) -}}
{% endmacro %}


{% macro exact_percentile(column, fraction) %}
    {#-
        An aggregate: the continuous percentile of a group's non-NULL values (linear interpolation
        between the two nearest ranks, as percentile_cont), exact and the same on both warehouses.
        For whole numbers and a whole-percent fraction it has at most two decimals: a numeric.
    -#}
    {{- return(adapter.dispatch('exact_percentile', 'nyc_taxi')(column, fraction)) -}}
{% endmacro %}

{% macro default__exact_percentile(column, fraction) -%}
    {#- percentile_cont interpolates in double precision: rounded to the two decimals the exact value has -#}
    round(cast(percentile_cont({{ fraction }}) within group (order by {{ column }}) as numeric), 2)
{%- endmacro %}

{% macro bigquery__exact_percentile(column, fraction) -%}
    {#-
        BigQuery's percentile_cont is only analytic (and interpolates in FLOAT64): here the same rule
        as an aggregate, in NUMERIC, over the group's values sorted into an array.
    -#}
    {%- set values = 'array_agg(' ~ column ~ ' ignore nulls order by ' ~ column ~ ')' -%}
    {%- set rank = '(count(' ~ column ~ ') - 1) * numeric \'' ~ fraction ~ '\'' -%}
    {%- set below = 'cast(' ~ values ~ '[safe_offset(cast(floor(' ~ rank ~ ') as int64))] as numeric)' -%}
    {%- set above = 'cast(' ~ values ~ '[safe_offset(cast(ceil(' ~ rank ~ ') as int64))] as numeric)' -%}
    round({{ below }} + ({{ rank }} - floor({{ rank }})) * ({{ above }} - {{ below }}), 2)
{%- endmacro %}


{% macro seconds_between(started, finished) %}
    {#- Seconds, with a fraction, between two timestamps of the ledger (`runner report`: a load's time). -#}
    {{- return(adapter.dispatch('seconds_between', 'nyc_taxi')(started, finished)) -}}
{% endmacro %}

{% macro default__seconds_between(started, finished) -%}
    extract(epoch from ({{ finished }} - {{ started }}))
{%- endmacro %}

{% macro bigquery__seconds_between(started, finished) -%}
    timestamp_diff({{ finished }}, {{ started }}, microsecond) / 1000000
{%- endmacro %}
