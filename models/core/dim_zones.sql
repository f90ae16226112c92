with

zones as (

    select * from {{ ref('taxi_zone_lookup') }}

),

final as (

    select
        locationid as location_id,
        borough,
        zone,
        replace(service_zone, 'Boro', 'Green') as service_zone
    from zones
    -- 264 (NV) and 265 (NA) are not places: trips there keep their ids, and fact_trips says 'Unknown'
    where borough != 'Unknown'

)

select * from final
