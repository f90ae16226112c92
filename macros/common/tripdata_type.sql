{#- The landing source declares portable types; each warehouse names them its own way. -#}

{% macro tripdata_type(portable) %}
    {{ return(adapter.dispatch('tripdata_type', 'nyc_taxi')(portable)) }}
{% endmacro %}


{% macro default__tripdata_type(portable) %}
    {#- Postgres: exact numerics (no rounding on load), timestamps without zone (NYC civil time as published). -#}
    {%- set types = {'integer': 'integer', 'numeric': 'numeric', 'timestamp': 'timestamp', 'text': 'text'} -%}
    {%- if portable not in types -%}
        {{ exceptions.raise_compiler_error("landing column type '" ~ portable ~ "' is not one of " ~ types.keys() | join(', ')) }}
    {%- endif -%}
    {{ return(types[portable]) }}
{% endmacro %}


{% macro bigquery__tripdata_type(portable) %}
    {#-
        Exact NUMERIC (scale 9, written out: on the emulator a bare NUMERIC keeps 3 decimals),
        DATETIME for the zone-less NYC civil times.
    -#}
    {%- set types = {'integer': 'int64', 'numeric': 'numeric(38, 9)', 'timestamp': 'datetime', 'text': 'string'} -%}
    {%- if portable not in types -%}
        {{ exceptions.raise_compiler_error("landing column type '" ~ portable ~ "' is not one of " ~ types.keys() | join(', ')) }}
    {%- endif -%}
    {{ return(types[portable]) }}
{% endmacro %}
