{#-
    A seed's table says which file it was loaded from: a post-hook of every seed (dbt_project.yml)
    writes the file's checksum as the table's description. The runner compares it with the file
    dbt parsed, and reloads the seed (and rebuilds what is built on it) only when the file changed.
-#}

{% macro record_seed_checksum() %}
    {{ return(adapter.dispatch('record_seed_checksum', 'nyc_taxi')(seed_checksum_note())) }}
{% endmacro %}

{% macro seed_checksum_note() %}
    {{ return('Loaded by dbt seed from a file with ' ~ model.checksum.name ~ ' ' ~ model.checksum.checksum) }}
{% endmacro %}

{% macro postgres__record_seed_checksum(note) %}
    comment on table {{ this }} is {{ sql_string(note) }}
{% endmacro %}

{% macro bigquery__record_seed_checksum(note) %}
    alter table {{ this }} set options (description = {{ sql_string(note) }})
{% endmacro %}
