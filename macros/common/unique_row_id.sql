{#-
    unique_row_id: md5 hex of a taxi type's seven identity fields, the same on every warehouse.
    The fields are the landing source's `meta.unique_row_id` (models/tripdata/_landing__sources.yml),
    each of the kind its column's data_type says.

    Each field is written in one canonical text form before hashing, so the typed values
    (not the CSV spelling: `.79` and `0.790` are one amount) decide the id:
      integers    decimal digits, `-` when negative                      2
      timestamps  microseconds since 1970-01-01 00:00, civil time as UTC  1601512279000000
      numerics    shortest exact decimal, no trailing zeros              0.79, 12, -2.5
      text        as published, `\` written `\\` and `|` written `\|`     B00001
      NULL        \N
    joined with `|`. No encoded field holds an unescaped `|`, and only NULL is written `\N`, so
    the joined string decodes to exactly one combination of fields: two different rows cannot
    share an input.
-#}

{% macro unique_row_id_fields(spec) %}
    {#- [(column, kind)] in the order they are hashed; kind is the column's portable data_type. -#}
    {%- set kinds = {} -%}
    {%- for column in spec.columns -%}
        {%- do kinds.update({column.name: column.data_type}) -%}
    {%- endfor -%}
    {%- set fields = [] -%}
    {%- for name in spec.identity -%}
        {%- if name not in kinds -%}
            {{ exceptions.raise_compiler_error(
                "landing source " ~ spec.taxi ~ "_tripdata: meta.unique_row_id names " ~ name ~ ", not one of its columns"
            ) }}
        {%- endif -%}
        {%- do fields.append((name, kinds[name])) -%}
    {%- endfor -%}
    {{ return(fields) }}
{% endmacro %}


{% macro unique_row_id(spec, times_in_numeric=false) %}
    {#- times_in_numeric: Postgres computes the times as releases before 2026-12 did (the same ids). -#}
    {{ return(adapter.dispatch('unique_row_id', 'nyc_taxi')(spec, times_in_numeric)) }}
{% endmacro %}


{% macro default__unique_row_id(spec, times_in_numeric=false) %}
    {{ exceptions.raise_compiler_error("unique_row_id is not implemented for the " ~ adapter.type() ~ " adapter") }}
{% endmacro %}


{% macro postgres__unique_row_id(spec, times_in_numeric=false) %}
    {#- Immutable operators only: Postgres computes it as a stored generated column while COPY runs. -#}
    {%- set encoded = [] -%}
    {%- for column, kind in unique_row_id_fields(spec) -%}
        {%- if kind == 'timestamp' -%}
            {#-
                Epoch microseconds. extract() computes them in numeric, slowly (3M rows, both
                times: 1.5 s, against 0.9 s in float8). date_part's float8 seconds are the
                microseconds divided by 10^6, rounded, then multiplied back, rounded again: off by
                at most |µs| * 2^-52, under half a microsecond within 70 years of 1970, where
                bigint's rounding makes them exact. Outside (seen off in 1833 and 2106), numeric.
            -#}
            {%- set micros_exact = 'cast(extract(epoch from ' ~ column ~ ') * 1000000 as bigint)' -%}
            {%- set micros_fast = "cast(date_part('epoch', " ~ column ~ ") * 1000000 as bigint)" -%}
            {%- if times_in_numeric -%}
                {%- set text = 'cast(' ~ micros_exact ~ ' as text)' -%}
            {%- else -%}
                {%- set text = "cast(case when " ~ column ~ " >= '1900-01-01' and " ~ column ~ " < '2040-01-01'"
                    ~ " then " ~ micros_fast ~ " else " ~ micros_exact ~ " end as text)" -%}
            {%- endif -%}
        {%- elif kind == 'numeric' -%}
            {%- set text = 'cast(trim_scale(' ~ column ~ ') as text)' -%}
        {%- elif kind == 'text' -%}
            {%- set text = "replace(replace(" ~ column ~ ", '\\', '\\\\'), '|', '\\|')" -%}
        {%- else -%}
            {%- set text = 'cast(' ~ column ~ ' as text)' -%}
        {%- endif -%}
        {%- do encoded.append("coalesce(" ~ text ~ ", '\\N')") -%}
    {%- endfor -%}
    md5({{ encoded | join(" || '|' || ") }})
{%- endmacro %}


{% macro bigquery__unique_row_id(spec, times_in_numeric=false) %}
    {#-
        The same text as on Postgres, byte for byte. UNIX_MICROS of the DATETIME read as UTC gives
        Postgres' epoch microseconds; NUMERIC's text form has its trailing zeros removed here
        because not every engine prints it shortest (the emulator prints 0.790000000).
    -#}
    {%- set encoded = [] -%}
    {%- for column, kind in unique_row_id_fields(spec) -%}
        {%- if kind == 'timestamp' -%}
            {%- set text = 'cast(unix_micros(timestamp(' ~ column ~ ')) as string)' -%}
        {%- elif kind == 'numeric' -%}
            {%- set text = "regexp_replace(regexp_replace(cast(" ~ column ~ " as string), r'(\\.[0-9]*?)0+$', r'\\1'), r'\\.$', '')" -%}
        {%- elif kind == 'text' -%}
            {%- set text = "replace(replace(" ~ column ~ ", '\\\\', '\\\\\\\\'), '|', '\\\\|')" -%}
        {%- else -%}
            {%- set text = 'cast(' ~ column ~ ' as string)' -%}
        {%- endif -%}
        {%- do encoded.append("coalesce(" ~ text ~ ", '\\\\N')") -%}
    {%- endfor -%}
    to_hex(md5(concat({{ encoded | join(", '|', ") }})))
{%- endmacro %}
