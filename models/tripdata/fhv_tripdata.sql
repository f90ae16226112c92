{#- For-hire vehicle trips, one partition per file month: see macros/materializations/tripdata_month.sql. -#}
{{ tripdata_month_select('fhv') }}
