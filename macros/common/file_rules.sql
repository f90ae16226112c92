{#-
    What a month's file must be, one definition for every path that lands one: the runner (it reads
    the header line and passes it to tripdata_begin_load), var raw_dir (the server reads it), and the
    merge that follows both (and a Kestra CopyIn). The same file is refused with the same words.
      - a readable gzip, not empty, with the taxi type's header (check_file_header);
      - rows after the header, most of them picked up in the file's month: a file saved under
        another month's name is refused, naming the month its rows belong to, unless var
        allow_other_month is true (check_file_rows).
-#}

{% macro tripdata_file_label(taxi, month) %}
    {#- How messages name a month's file: `green_tripdata_2019-01.csv.gz (green 2019-01)`. -#}
    {{ return(tripdata_filename(taxi, month) ~ ' (' ~ taxi ~ ' ' ~ month.month ~ ')') }}
{% endmacro %}


{% macro tripdata_check_header(taxi, month, header) %}
    {#- run-operation: is this first line the header a taxi type's month file must have? An error says why not. -#}
    {%- do check_file_header(validate_taxi(taxi), tripdata_month(month), header) -%}
{% endmacro %}


{% macro check_file_header(taxi, month, header, readable=true) %}
    {#- header: the file's first line as read; readable: false when the file is not a readable gzip. -#}
    {%- set where = tripdata_file_label(taxi, month) -%}
    {%- if not readable -%}
        {{ exceptions.raise_compiler_error(where ~ ": not a readable gzip file; nothing was loaded") }}
    {%- endif -%}
    {%- set found = (header or '') | replace('\ufeff', '') | trim | lower -%}
    {%- if found == '' -%}
        {{ exceptions.raise_compiler_error(where ~ ": the file is empty (no header, no rows); nothing was loaded") }}
    {%- endif -%}
    {%- set expected = tripdata_spec(taxi).columns | map(attribute='name') | list -%}
    {%- set columns = found.split(',') | map('trim') | list -%}
    {%- if columns != expected -%}
        {%- set missing = expected | reject('in', columns) | list -%}
        {%- set unexpected = columns | reject('in', expected) | list -%}
        {%- set details = [] -%}
        {%- if missing -%}{%- do details.append('missing ' ~ missing | join(', ')) -%}{%- endif -%}
        {%- if unexpected -%}{%- do details.append('unexpected ' ~ unexpected | join(', ')) -%}{%- endif -%}
        {%- if not details -%}{%- do details.append('the same columns in another order') -%}{%- endif -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": unexpected header (" ~ details | join('; ') ~ "): " ~ found[:300]
            ~ "; expected " ~ expected | join(',') ~ "; nothing was loaded"
        ) }}
    {%- endif -%}
{% endmacro %}


{% macro check_file_rows(taxi, month, landing, rows_in_file, pickups_outside_month) %}
    {#- After the landing table holds the file: rows, and most of them picked up in the month. -#}
    {%- set where = tripdata_file_label(taxi, month) -%}
    {%- set landed_rows = var('landed_rows', none) -%}
    {%- if landed_rows is not none and landed_rows != rows_in_file -%}
        {#- the loader's own count (the runner: its COPY streams' rows) against what the merge finds -#}
        {{ exceptions.raise_compiler_error(
            where ~ ": the loader landed " ~ landed_rows ~ " rows, the landing table holds " ~ rows_in_file
            ~ ": nothing was loaded"
        ) }}
    {%- endif -%}
    {%- if rows_in_file == 0 -%}
        {{ exceptions.raise_compiler_error(where ~ ": a header and no rows: nothing to load") }}
    {%- endif -%}
    {%- if pickups_outside_month * 2 > rows_in_file and not var('allow_other_month', false) -%}
        {%- set pickup = tripdata_spec(taxi).pickup_column -%}
        {%- set busiest = run_query(
            "select " ~ month_start(pickup) ~ " as pickup_month, count(*) as trips from " ~ landing
            ~ " group by 1 order by 2 desc limit 1"
        ).rows[0] -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": " ~ '{:,}'.format(pickups_outside_month) ~ " of its " ~ '{:,}'.format(rows_in_file)
            ~ " pickups are outside " ~ month.month ~ "; the most, " ~ '{:,}'.format(busiest[1] | int)
            ~ ", are in " ~ (busiest[0] | string)[:7] ~ ": is this another month's file under "
            ~ month.month ~ "'s name? Nothing was loaded. To load it as " ~ month.month
            ~ " all the same: runner --allow-other-month, or dbt --vars '{.., allow_other_month: true}'"
        ) }}
    {%- endif -%}
{% endmacro %}
