{#-
    The taxi types and file months this project knows, and the validation of the
    `taxi` and `month` vars. Everything that reaches SQL passes through here first.
-#}

{% macro tripdata_taxis() %}
    {#- The taxi types are the tables of the `landing` source (models/tripdata/_landing__sources.yml). -#}
    {%- set taxis = [] -%}
    {%- for node in graph.sources.values() if node.source_name == 'landing' -%}
        {%- do taxis.append(node.name | replace('_tripdata', '')) -%}
    {%- endfor -%}
    {{ return(taxis | sort) }}
{% endmacro %}


{% macro tripdata_spec(taxi) %}
    {#- A taxi type's CSV layout: columns in file order with portable types, its pickup and dropoff columns, its identity fields. -#}
    {%- for node in graph.sources.values() if node.source_name == 'landing' and node.name == taxi ~ '_tripdata' -%}
        {{ return({
            'taxi': taxi,
            'columns': node.columns.values() | list,
            'pickup_column': node.meta.pickup_column,
            'dropoff_column': node.meta.dropoff_column,
            'identity': node.meta.unique_row_id,
        }) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("taxi '" ~ taxi ~ "' has no table in the landing source") }}
{% endmacro %}


{% macro validate_taxi(taxi) %}
    {#- The taxi type as the project names it (any case accepted, as the runner does), or an error. -#}
    {%- set known = tripdata_taxis() -%}
    {%- if taxi is not string or taxi | trim | lower not in known -%}
        {{ exceptions.raise_compiler_error(
            "var taxi=" ~ (taxi | string) ~ " is not a known taxi type: use one of " ~ known | join(', ')
        ) }}
    {%- endif -%}
    {{ return(taxi | trim | lower) }}
{% endmacro %}


{% macro tripdata_month(month) %}
    {#-
        Validates a `YYYY-MM` month against the project's range (vars first_month, last_month)
        and returns its parts. Only digits survive into the returned strings.
    -#}
    {%- set first, last = var('first_month'), var('last_month') -%}
    {%- set match = modules.re.match('^([0-9]{4})-(0[1-9]|1[0-2])$', month if month is string else '') -%}
    {%- if not match -%}
        {{ exceptions.raise_compiler_error(
            "var month=" ~ (month | string) ~ " is not a month: use YYYY-MM, like month: 2019-01"
        ) }}
    {%- endif -%}
    {%- if month < first or month > last -%}
        {{ exceptions.raise_compiler_error(
            "var month=" ~ month ~ " is outside the project's range " ~ first ~ " to " ~ last
            ~ " (vars first_month and last_month)"
        ) }}
    {%- endif -%}
    {%- set year, mm = match.group(1) | int, match.group(2) | int -%}
    {%- set next_year, next_mm = (year + 1, 1) if mm == 12 else (year, mm + 1) -%}
    {{ return({
        'month': month,
        'suffix': '%04d_%02d' % (year, mm),
        'yyyymm': year * 100 + mm,
        'first_day': '%04d-%02d-01' % (year, mm),
        'next_first_day': '%04d-%02d-01' % (next_year, next_mm),
    }) }}
{% endmacro %}


{% macro tripdata_filename(taxi, month) %}
    {#- A month's file, as the public release names it (var tripdata_file): `green_tripdata_2019-01.csv.gz`. -#}
    {{ return(var('tripdata_file') | replace('{taxi}', taxi) | replace('{month}', month.month)) }}
{% endmacro %}


{% macro tripdata_month_vars(taxi) %}
    {#-
        The month a `dbt build --vars '{taxi: .., month: ..}'` asks `taxi`'s model to ingest,
        or none when the vars target no month of this taxi type (plain `dbt build`).
    -#}
    {%- set taxi_var, month_var = var('taxi', none), var('month', none) -%}
    {%- if taxi_var is none and month_var is none -%}
        {{ return(none) }}
    {%- elif taxi_var is none or month_var is none -%}
        {{ exceptions.raise_compiler_error("set both vars, taxi and month (got taxi=" ~ taxi_var ~ ", month=" ~ month_var ~ ")") }}
    {%- endif -%}
    {%- set taxi_var = validate_taxi(taxi_var) -%}
    {%- set month = tripdata_month(month_var) -%}
    {%- if taxi_var != taxi -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do month.update({
        'taxi': taxi,
        'filename': tripdata_filename(taxi, month),
    }) -%}
    {%- set raw_dir = tripdata_raw_dir() -%}
    {%- if raw_dir is not none -%}
        {%- do month.update({'raw_path': raw_file_path(raw_dir, taxi, month)}) -%}
    {%- endif -%}
    {{ return(month) }}
{% endmacro %}
