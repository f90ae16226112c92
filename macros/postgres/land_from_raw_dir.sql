{#-
    Server-side landing: the Postgres server reads `<raw_dir>/<taxi>/<taxi>_tripdata_<YYYY>-<MM>.csv.gz`
    itself (COPY .. FROM PROGRAM, so it needs superuser or pg_execute_server_program).
    The shell commands are built only from the validated taxi and month and a raw_dir
    restricted to plain path characters, so nothing in them can be interpreted by the shell.
-#}

{% macro default__raw_file_path(raw_dir, taxi, month) %}
    {%- if raw_dir is not string or not modules.re.match('^/[A-Za-z0-9._/-]*$', raw_dir) or '..' in raw_dir -%}
        {{ exceptions.raise_compiler_error(
            "var raw_dir=" ~ (raw_dir | string) ~ " must be an absolute folder path of letters, digits and . _ / - only"
        ) }}
    {%- endif -%}
    {{ return(raw_dir.rstrip('/') ~ '/' ~ taxi ~ '/' ~ tripdata_filename(taxi, month)) }}
{% endmacro %}


{% macro postgres__land_from_raw_dir(taxi, month, raw_dir) %}
    {%- set spec = tripdata_spec(taxi) -%}
    {%- set path = raw_file_path(raw_dir, taxi, month) -%}  {#- validated again: this macro can be called alone -#}
    {%- set landing = landing_relation(taxi, month) -%}
    {%- set where = tripdata_file_label(taxi, month) -%}
    {%- do create_landing_table(taxi, month) -%}

    {#- Size, checksum, whether gzip can read it, and the header line, read by the server in one program. -#}
    {%- set probe -%}
        f="{{ path }}"; if [ ! -r "$f" ]; then echo missing; exit 0; fi;
        wc -c < "$f" | tr -d ' '; sha256sum < "$f" | cut -d ' ' -f 1;
        if [ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' \n')" = 1f8b ]; then echo gzip; else echo not-gzip; fi;
        gzip -dc "$f" 2>/dev/null | head -n 1 | tr -d '\r'
    {%- endset -%}
    {% call statement('raw_file_probe', fetch_result=true, auto_begin=true) %}
        create temporary table if not exists nyc_taxi_raw_probe (n serial, line text) on commit drop;
        truncate nyc_taxi_raw_probe;
        copy nyc_taxi_raw_probe (line) from program {{ sql_string(probe | trim) }};
        select line from nyc_taxi_raw_probe order by n;
    {% endcall %}
    {%- set lines = load_result('raw_file_probe').table.columns[0].values() | list -%}
    {%- if lines | length == 0 or lines[0] == 'missing' -%}
        {{ exceptions.raise_compiler_error(where ~ ": not found or not readable by the Postgres server at " ~ path) }}
    {%- endif -%}
    {#- readable as the runner reads it: gzip's magic bytes, or no bytes at all (an empty file) -#}
    {%- set readable = lines[2] == 'gzip' or lines[0] == '0' -%}
    {%- do check_file_header(taxi, month, lines[3] if lines | length > 3 else '', readable=readable) -%}
    {%- set expected = spec.columns | map(attribute='name') | list -%}

    {#- One COPY into the freshly truncated table: FREEZE writes the rows already frozen. -#}
    {%- set copy -%}
        copy {{ landing }} ({{ expected | join(', ') }})
        from program {{ sql_string('gzip -dc "' ~ path ~ '"') }} with (format csv, header true, freeze true)
    {%- endset -%}
    {#- A cut-off gzip often first shows as a broken last row: on failure, name the real cause. -#}
    {% call statement('land_from_raw_dir', auto_begin=true) %}
        do $land$
        declare
            detail text;
            gzip_error text;
        begin
            truncate {{ landing }};
            execute {{ sql_string(copy) }};
        exception when others then
            get stacked diagnostics detail = pg_exception_context;
            create temporary table if not exists nyc_taxi_gzip_test (line text) on commit drop;
            execute {{ sql_string("copy nyc_taxi_gzip_test from program " ~ sql_string('gzip -t "' ~ path ~ '" 2>&1; true')) }};
            select string_agg(line, ' ') into gzip_error from nyc_taxi_gzip_test;
            if gzip_error <> '' then
                raise exception '%: truncated or corrupt gzip (%); nothing was loaded', {{ sql_string(where) }}, gzip_error;
            end if;
            raise exception '%: % (%)', {{ sql_string(where) }}, sqlerrm, detail;
        end
        $land$;
    {% endcall %}
    {{ return({'bytes': lines[0] | int, 'checksum': lines[1], 'source_url': 'file://' ~ path}) }}
{% endmacro %}
