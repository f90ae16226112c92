{#-
    The runner rebuilds what changed in the project, not only what the data changed: every seed and
    every view or table model (not the incremental ones, rebuilt by month anyway) records, as its
    relation's description, the checksum of the file dbt built it from (a post-hook, dbt_project.yml).
    The runner compares it with the file dbt parsed: a seed or model whose file changed since it was
    built is rebuilt, with what is downstream of it, for every month.
-#}

{% macro record_node_checksum() %}
    {%- if model.config.materialized in ('incremental', 'tripdata_month') -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(adapter.dispatch('record_node_checksum', 'nyc_taxi')(node_checksum_note())) }}
{% endmacro %}

{% macro node_checksum_note() %}
    {{ return('Built by dbt from a file with ' ~ model.checksum.name ~ ' ' ~ model.checksum.checksum) }}
{% endmacro %}

{% macro postgres__record_node_checksum(note) %}
    comment on {{ 'view' if model.config.materialized == 'view' else 'table' }} {{ this }} is {{ sql_string(note) }}
{% endmacro %}

{% macro bigquery__record_node_checksum(note) %}
    {#- through the API, as dbt-bigquery's persist_docs does (no SQL statement: the hook runs none) -#}
    {%- do adapter.update_table_description(this.database, this.schema, this.identifier, note) -%}
{% endmacro %}
