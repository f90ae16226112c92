{#-
    Views on Postgres, replaced in place. dbt-postgres replaces a view by building a new one under
    another name, swapping the names and dropping the old view with CASCADE, which also drops every
    view built on it (fact_trips on the staging views and dim_zones) until the build reaches them.
    Here a view is replaced with one `create or replace view`: the views built on it stay, and
    readers never find it missing. Postgres refuses that when a column would be dropped, renamed or
    retyped; then, and for a first build or --full-refresh, dbt's own materialization runs.
-#}

{% materialization view, adapter='postgres' -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- if existing is none or not existing.is_view or should_full_refresh() or not view_replaceable_in_place(sql) -%}
        {{ return(dbt.materialization_view_default()) }}
    {%- endif -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {% call statement('main') -%}
        {{ get_replace_view_sql(this, sql) }}
    {%- endcall %}
    {% do apply_grants(this, config.get('grants'), should_revoke=should_revoke(existing, full_refresh_mode=True)) %}
    {% do persist_docs(this, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [this.incorporate(type='view')]}) }}
{%- endmaterialization %}


{% macro view_replaceable_in_place(sql) %}
    {#-
        Would Postgres accept `create or replace view` for this view? Tried and always undone (a
        raised error rolls the block back): Postgres alone knows which column changes it allows.
    -#}
    {%- set replace_sql = get_replace_view_sql(this, sql) | trim -%}
    {%- set replace_sql = replace_sql[:-1] if replace_sql.endswith(';') else replace_sql -%}
    {% call statement('view_in_place_probe', fetch_result=true) %}
        do $probe$ begin
            execute {{ sql_string(replace_sql) }};
            raise exception using errcode = 'NTVOK';  -- it would work: undo it
        exception
            when sqlstate 'NTVOK' then perform set_config('nyc_taxi.view_in_place', 'yes', true);
            when invalid_table_definition then perform set_config('nyc_taxi.view_in_place', 'no', true);
        end $probe$;
        select current_setting('nyc_taxi.view_in_place')
    {% endcall %}
    {{ return(load_result('view_in_place_probe').table.rows[0][0] == 'yes') }}
{% endmacro %}
