{#- Where things live. Main tables and the ledger: the target schema. Landing tables: `<target schema>_landing`. -#}

{% macro landing_schema() %}
    {{ return(target.schema ~ var('landing_schema_suffix')) }}
{% endmacro %}


{% macro tripdata_relation(taxi) %}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier=taxi ~ '_tripdata', type='table')) }}
{% endmacro %}


{% macro month_partition_relation(taxi, month) %}
    {#- The month's table inside the main table: `green_tripdata_2020_10`. -#}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier=taxi ~ '_tripdata_' ~ month.suffix, type='table')) }}
{% endmacro %}


{% macro landing_relation(taxi, month) %}
    {#- Same name as the month's partition, in the landing schema: landing it is a move, not a copy. -#}
    {{ return(api.Relation.create(database=target.database, schema=landing_schema(), identifier=taxi ~ '_tripdata_' ~ month.suffix, type='table')) }}
{% endmacro %}


{% macro incoming_relation(taxi, month) %}
    {#- A runner load's own landing table: COPYed into by several sessions, taken by its merge. -#}
    {%- set landing = landing_relation(taxi, month) -%}
    {{ return(landing.incorporate(path={'identifier': landing.identifier ~ '_incoming'})) }}
{% endmacro %}


{% macro ledger_relation() %}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='load_ledger', type='table')) }}
{% endmacro %}
