{#- BigQuery: the main tables, the landing tables, the ledger and the month lease. -#}

{% macro bigquery__relation_exists(relation) %}
    {{ return(adapter.get_bq_table(relation) is not none) }}
{% endmacro %}


{% macro bigquery__sql_string(value) %}
    {#- GoogleSQL string literals escape with backslashes and cannot hold a raw line break. -#}
    {%- if value is none -%}{{ return('null') }}{%- endif -%}
    {%- set escaped = value | string | replace('\x00', '') | replace('\\', '\\\\') | replace("'", "\\'")
        | replace('\n', '\\n') | replace('\r', '\\r') -%}
    {{ return("'" ~ escaped ~ "'") }}
{% endmacro %}


{% macro bigquery__tripdata_begin() %}
    {#- Nothing to open: a BigQuery transaction lives inside one script (see bigquery__merge_month). -#}
{% endmacro %}


{% macro bigquery__tripdata_commit() %}
{% endmacro %}


{% macro bigquery_dataset(schema) %}
    {{ return(adapter.quote(target.database) ~ '.' ~ adapter.quote(schema)) }}
{% endmacro %}


{% macro bigquery_landing_schema_ddl() %}
    {#- landing tables live for one load; a load that died leaves one behind for a week at most -#}
    {{ return(
        'create schema if not exists ' ~ bigquery_dataset(landing_schema())
        ~ ' options (default_table_expiration_days = ' ~ (var('landing_expiry_days') | int) ~ ')'
    ) }}
{% endmacro %}


{% macro bigquery__tripdata_prepare(taxi) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set main = tripdata_relation(taxi) -%}
    {%- if relation_exists(main) and relation_exists(ledger_relation()) -%}
        {{ return(none) }}
    {%- endif -%}
    {% call statement('tripdata_prepare') %}
        create schema if not exists {{ bigquery_dataset(target.schema) }};
        {{ bigquery_landing_schema_ddl() }};

        create table if not exists {{ main }} (
            {%- for column in spec.columns %}
            {{ column.name }} {{ tripdata_type(column.data_type) }},
            {%- endfor %}
            unique_row_id string not null,
            file_month date not null,
            filename string not null,
            load_id string not null
        )
        -- a month is one partition: its merge reads and replaces that partition alone;
        -- clustered for the zone analytics downstream (fact_trips, revenue by pickup zone)
        partition by file_month
        cluster by pulocationid, dolocationid
        options (
            description = 'NYC TLC {{ taxi }} trips, one partition per file month (the month of the file a row came from). Loaded by nyc_taxi macros: see load_ledger.'
        );

        create table if not exists {{ ledger_relation() }} (
            load_id string not null,
            taxi string not null,
            file_month date not null,
            filename string not null,
            source_url string,
            bytes int64,
            checksum string,
            rows_in_file int64,
            rows_loaded int64,
            repeats_collapsed int64,
            exact_repeats int64,
            same_id_variants int64,
            pickups_outside_month int64,
            state string not null,
            action string,
            error string,
            started_at timestamp not null,
            finished_at timestamp,
            loaded_by string not null,
            invocation_id string,
            -- a running load's hold on its month (BigQuery has no locks): see bigquery__lock_month
            lease_expires_at timestamp
        )
        options (description = 'Every attempt to load a taxi file month: what, from where, how many rows, and how it ended.');
    {% endcall %}
{% endmacro %}


{% macro bigquery__create_landing_table(taxi, month) %}
    {% call statement('create_landing_table') %}
        create table if not exists {{ landing_relation(taxi, month) }} (
            {%- for column in tripdata_spec(taxi).columns %}
            {{ column.name }} {{ tripdata_type(column.data_type) }}{{ ',' if not loop.last }}
            {%- endfor %}
        )
    {% endcall %}
{% endmacro %}


{% macro bigquery__landed_file(taxi, month) %}
    {#- An external table over the month's object (stage_external_sources) is read when merged. -#}
    {%- set table = adapter.get_bq_table(landing_relation(taxi, month)) -%}
    {%- if table is none -%}
        {{ return(none) }}
    {%- elif table.table_type == 'EXTERNAL' -%}
        {{ return({'loaded_by': 'dbt external table', 'source_url': table.external_data_configuration.source_uris[0]}) }}
    {%- elif (table.num_rows or 0) > 0 -%}
        {{ return({'loaded_by': 'dbt landing table', 'source_url': none}) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}


{% macro bigquery__discard_landing(taxi, month) %}
    {#- through the API: one call drops a native or an external table -#}
    {%- do adapter.drop_relation(landing_relation(taxi, month)) -%}
{% endmacro %}


{% macro bigquery__lock_month(taxi, month, load_id) %}
    {#-
        A lease in the ledger, taken with one conditional UPDATE: the running load `load_id` holds
        the month unless another running load holds an unexpired lease on it. BigQuery runs
        UPDATEs of one table one after the other, so two loads cannot both win.
        Taking it again renews it; finishing or failing the load (state <> 'running') ends it.
    -#}
    {%- if load_id is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set ledger = ledger_relation() -%}
    {% call statement('lease_month', fetch_result=false) %}
        update {{ ledger }}
        set lease_expires_at = timestamp_add(current_timestamp(), interval {{ var('month_lease_minutes') | int }} minute)
        where load_id = {{ sql_string(load_id) }} and state = 'running'
            and not exists (
                select 1
                from {{ ledger }} as other
                where other.taxi = {{ sql_string(taxi) }}
                    and other.file_month = date '{{ month.first_day }}'
                    and other.load_id != {{ sql_string(load_id) }}
                    and other.state = 'running'
                    and other.lease_expires_at > current_timestamp()
            )
    {% endcall %}
    {%- if load_result('lease_month').response.rows_affected != 1 -%}
        {%- set holders = run_query(
            "select load_id, lease_expires_at from " ~ ledger ~ " where taxi = " ~ sql_string(taxi)
            ~ " and file_month = date '" ~ month.first_day ~ "' and state = 'running' and load_id != " ~ sql_string(load_id)
            ~ " and lease_expires_at > current_timestamp() order by lease_expires_at desc limit 1"
        ) -%}
        {%- set holder = holders.rows[0] if holders.rows | length else none -%}
        {{ exceptions.raise_compiler_error(
            taxi ~ " " ~ month.month ~ ": " ~ (
                "load " ~ holder[0] ~ " holds the month until " ~ holder[1].strftime('%Y-%m-%d %H:%M:%S UTC') ~ " (a lease in "
                ~ ledger.identifier ~ "); run again once it has finished, or after its lease ends"
                if holder else "load " ~ load_id ~ " is not a running load in the ledger"
            )
        ) }}
    {%- endif -%}
{% endmacro %}
