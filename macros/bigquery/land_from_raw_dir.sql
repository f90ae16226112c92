{#-
    BigQuery reads the month file from Cloud Storage itself: LOAD DATA (a load job, written as
    SQL) into the month's landing table. The bucket comes from var gcs_bucket (GCS_BUCKET) unless
    var raw_dir names gs://bucket[/prefix]; a loader that landed rows itself passes load_id instead.
-#}

{% macro bigquery__tripdata_raw_dir() %}
    {%- set bucket = var('gcs_bucket', '') -%}
    {%- if var('raw_dir', none) is not none -%}
        {{ return(var('raw_dir')) }}
    {%- elif bucket and var('load_id', none) is none -%}
        {{ return('gs://' ~ bucket) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}


{% macro bigquery__raw_file_path(raw_dir, taxi, month) %}
    {%- if raw_dir is not string or not modules.re.match('^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[A-Za-z0-9._/-]*)?$', raw_dir) or '..' in raw_dir -%}
        {{ exceptions.raise_compiler_error(
            "var raw_dir=" ~ (raw_dir | string) ~ " must be gs://<bucket>[/<prefix>] of lower-case letters, digits and . _ / - only"
            ~ " (or set var gcs_bucket / GCS_BUCKET to the bucket name)"
        ) }}
    {%- endif -%}
    {{ return(raw_dir.rstrip('/') ~ '/' ~ taxi ~ '/' ~ tripdata_filename(taxi, month)) }}
{% endmacro %}


{% macro bigquery__land_from_raw_dir(taxi, month, raw_dir) %}
    {%- set uri = raw_file_path(raw_dir, taxi, month) -%}  {#- validated again: this macro can be called alone -#}
    {#- If the load fails (no such object, a bad value, a corrupt gzip), the table is left as it was. -#}
    {% call statement('land_from_raw_dir') %}
        load data overwrite {{ landing_relation(taxi, month) }} (
            {%- for column in tripdata_spec(taxi).columns %}
            {{ column.name }} {{ tripdata_type(column.data_type) }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
        from files (
            format = 'CSV',
            uris = [{{ sql_string(uri) }}],
            skip_leading_rows = 1
        )
    {% endcall %}
    {{ return({'bytes': none, 'checksum': none, 'source_url': uri}) }}
{% endmacro %}
