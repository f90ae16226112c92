{#-
    dbt-external-tables (vendor/dbt_external_tables) on BigQuery, for the landing source.
    `dbt run-operation stage_external_sources --vars '{taxi: green, month: 2019-01}'` makes the
    month's landing table an external table over the month's object (the source's `external:`
    location, gs://<bucket>/green/<file>); `dbt build` with the same vars then merges it into the
    main table and drops it. Without var month: one table per taxi type over all its files, named
    as the source, for ad-hoc queries.
    The package's own runner (stage_external_sources: select, plan, log, execute) is kept; the
    project's dispatch config finds these bodies first. They give the landing tables the project's
    names and column types, and check the location before it reaches SQL. Other sources get the
    package's own bodies.
-#}

{% macro bigquery__get_external_build_plan(source_node) %}
    {%- if source_node.source_name != 'landing' -%}
        {{ return(dbt_external_tables.bigquery__get_external_build_plan(source_node)) }}
    {%- endif -%}
    {%- if not landing_source_staged(source_node) -%}
        {{ return([]) }}  {#- another taxi type than var taxi: the package logs SKIP -#}
    {%- endif -%}
    {#- always replaced: a landing table of the same name (a native one a loader made, or one a
        failed load left) must never be merged instead of the month's object -#}
    {{ return([bigquery_landing_schema_ddl(), dbt_external_tables.create_external_table(source_node)]) }}
{% endmacro %}


{% macro bigquery__create_external_table(source_node) %}
    {%- if source_node.source_name != 'landing' -%}
        {{ return(dbt_external_tables.bigquery__create_external_table(source_node)) }}
    {%- endif -%}
    {%- set taxi = source_node.name | replace('_tripdata', '') -%}
    {%- set month = tripdata_month(var('month')) if var('month', none) is not none else none -%}
    {%- set relation = landing_relation(taxi, month) if month else source('landing', source_node.name) -%}
    {%- set external = source_node.external -%}
    create or replace external table {{ relation }} (
        {%- for column in source_node.columns.values() %}
        {{ column.name }} {{ tripdata_type(column.data_type) }}{{ ',' if not loop.last }}
        {%- endfor %}
    )
    options (
        uris = [{{ sql_string(gcs_location(external.location, taxi)) }}]
        {%- for key, value in (external.options or {}).items() %},
        {{ external_table_option(key, value) }}
        {%- endfor %}
    )
{% endmacro %}


{% macro bigquery__update_external_table_columns(source_node) %}
    {#- Column descriptions on a table that lives for one load: not worth a call (and a skipped taxi has none). -#}
    {%- if source_node.source_name != 'landing' -%}
        {%- do dbt_external_tables.bigquery__update_external_table_columns(source_node) -%}
    {%- endif -%}
{% endmacro %}


{% macro landing_source_staged(source_node) %}
    {#- With var taxi, stage_external_sources stages that taxi type's month only. -#}
    {%- set taxi = source_node.name | replace('_tripdata', '') -%}
    {{ return(var('taxi', none) is none or validate_taxi(var('taxi')) == taxi) }}
{% endmacro %}


{% macro gcs_location(location, taxi) %}
    {#- The source's location as rendered (vars gcs_bucket, month), checked: it reaches SQL. -#}
    {%- set pattern = '^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[A-Za-z0-9._/*-]+$' -%}
    {%- if location is not string or not modules.re.match(pattern, location) or '..' in location -%}
        {{ exceptions.raise_compiler_error(
            "the " ~ taxi ~ " landing source's external location " ~ (location | string)
            ~ " is not gs://<bucket>/<path> of lower-case bucket letters, digits and . _ - (path: also / *):"
            ~ " set var gcs_bucket (or GCS_BUCKET) to the bucket that holds the month files"
        ) }}
    {%- endif -%}
    {{ return(location) }}
{% endmacro %}


{% macro external_table_option(key, value) %}
    {#- One `key = value` of an external table's OPTIONS, from the source's `external.options`. -#}
    {%- if not modules.re.match('^[a-z_]+$', key | string) -%}
        {{ exceptions.raise_compiler_error("external table option " ~ (key | string) ~ " is not a plain option name") }}
    {%- endif -%}
    {%- if value is number -%}  {#- booleans too -#}
        {{ return(key ~ ' = ' ~ (value | string | lower)) }}
    {%- endif -%}
    {{ return(key ~ ' = ' ~ sql_string(value)) }}
{% endmacro %}


{% macro bigquery__tripdata_raw_dir() %}
    {#- BigQuery has no raw_dir: it reads a month from Cloud Storage through the month's external table. -#}
    {%- if var('raw_dir', none) is not none -%}
        {{ exceptions.raise_compiler_error(
            "var raw_dir is for Postgres. On BigQuery, stage the month's external table first: "
            ~ "dbt run-operation stage_external_sources --vars '{taxi: <taxi>, month: <YYYY-MM>}' "
            ~ "(it reads gs://<var gcs_bucket>/<taxi>/<file>), then dbt build with the same vars"
        ) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}


{% macro bigquery__landing_advice(taxi, month) %}
    {{ return(
        "or upload " ~ month.filename ~ " to gs://<bucket>/" ~ taxi ~ "/ (var gcs_bucket, GCS_BUCKET) and stage the month's "
        ~ "external table: `dbt run-operation stage_external_sources --vars '{taxi: " ~ taxi ~ ", month: " ~ month.month ~ "}'`"
    ) }}
{% endmacro %}
