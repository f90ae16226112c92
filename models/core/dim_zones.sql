{{ config(materialized='view') -}}

{#-
    A view over the seed: reloading the seed never drops what is built on it. One plain select,
    without import CTEs: then Postgres sees through it to the seed's unique index on locationid,
    and a query of fact_trips that uses no zone column skips fact_trips' zone joins.
-#}

select
    locationid as location_id,
    borough,
    zone,
    replace(service_zone, 'Boro', 'Green') as service_zone
from {{ ref('taxi_zone_lookup') }}
-- 264 (NV) and 265 (NA) are not places: trips there keep their ids, and fact_trips says 'Unknown'
where borough != 'Unknown'
