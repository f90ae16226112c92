update `taxi-test`.`nyc_taxi`.`load_ledger`
set lease_expires_at = timestamp_add(current_timestamp(), interval 60 minute)
where load_id = '<load_id>' and state = 'running'
    and not exists (
        select 1
        from `taxi-test`.`nyc_taxi`.`load_ledger` as other
        where other.taxi = 'green'
            and other.file_month = date '2020-10-01'
            and other.load_id != '<load_id>'
            and other.state = 'running'
            and other.lease_expires_at > current_timestamp()
    )
