"""The analytics models (staging, dim_zones, fact_trips, dm_monthly_zone_revenue) on PostgreSQL.

Expected figures are computed from the CSV in the test (tests/reference.py), not from the models.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from conftest import BUNDLED
from reference import expected_month, read_rows, republished_rows, write_month

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
YELLOW_2020_07 = BUNDLED / "yellow" / "yellow_tripdata_2020-07.csv.gz"


def fetch(db, sql: str, params: tuple = ()) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def mart(db) -> dict[tuple, tuple]:
    """(service, file month, pickup zone) -> (trips, total amount, outside-month pickups, loaded_at)."""
    rows = fetch(
        db,
        "select service_type, to_char(file_month, 'YYYY-MM'), pickup_location_id, total_monthly_trips,"
        " revenue_monthly_total_amount, pickups_outside_file_month, loaded_at"
        " from nyc_taxi_core.dm_monthly_zone_revenue",
    )
    return {row[:3]: row[3:] for row in rows}


def expected_mart(service: str, month: str, path) -> dict[tuple, tuple]:
    """The mart's rows for one file, computed from the CSV: per pickup zone, trips and total_amount."""
    header, _ = read_rows(path)
    pickup, total = header.index("pulocationid"), header.index("total_amount")
    trips, amounts = Counter(), defaultdict(Decimal)
    for row in expected_month(path, month).kept.values():
        zone = int(row[pickup]) if row[pickup] else None
        trips[zone] += 1
        amounts[zone] += Decimal(row[total] or 0)
    return {(service, month, zone): (trips[zone], amounts[zone]) for zone in trips}


def trips_and_totals(rows: dict[tuple, tuple]) -> dict[tuple, tuple]:
    return {key: value[:2] for key, value in rows.items()}


def test_plain_build_passes_on_an_empty_warehouse(dbt, db):
    results = dbt.build()

    assert {r.status for r in results.results} <= {"success", "pass"}
    assert fetch(db, "select count(*) from nyc_taxi_core.fact_trips") == [(0,)]
    assert fetch(db, "select count(*) from nyc_taxi_core.dim_zones") == [(263,)]  # 265 less NV and NA


def test_mart_holds_the_trips_and_revenue_of_the_files(make_pipeline, db, project):
    result = make_pipeline().run(
        [(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))]
    )
    assert not result.failed, result

    expected = {
        **expected_mart("Green", "2020-10", GREEN_2020_10),
        **expected_mart("Yellow", "2020-07", YELLOW_2020_07),
    }
    assert trips_and_totals(mart(db)) == expected
    assert sum(trips for trips, _ in expected.values()) == 95120 + 266
    totals = dict(
        fetch(
            db,
            "select service_type, sum(revenue_monthly_total_amount)"
            " from nyc_taxi_core.dm_monthly_zone_revenue group by service_type",
        )
    )
    assert totals == {"Green": Decimal("2196773.09"), "Yellow": Decimal("5685.80")}
    outside = dict(
        fetch(
            db,
            "select service_type, sum(pickups_outside_file_month)"
            " from nyc_taxi_core.dm_monthly_zone_revenue group by service_type",
        )
    )
    assert outside == {
        "Green": expected_month(GREEN_2020_10, "2020-10").pickups_outside_month,
        "Yellow": expected_month(YELLOW_2020_07, "2020-07").pickups_outside_month,
    }


def test_staging_drops_nothing_and_flags_what_is_odd(make_pipeline, db, project):
    result = make_pipeline().run([(project.taxi("green"), Month(2020, 10))])
    assert not result.failed, result
    header, rows = read_rows(GREEN_2020_10)
    amounts = [
        header.index(name)
        for name in header
        if name.endswith(("_amount", "extra", "mta_tax", "fee", "surcharge"))
    ]

    [(total, no_vendor, negative, outside, unknown_zone)] = fetch(
        db,
        "select count(*), count(*) filter (where vendor_id is null),"
        " count(*) filter (where has_negative_amount), count(*) filter (where is_pickup_outside_file_month),"
        " count(*) filter (where pickup_zone = 'Unknown') from nyc_taxi_core.fact_trips",
    )
    assert fetch(db, "select count(*) from nyc_taxi_staging.stg_green_tripdata") == [(len(rows),)]

    assert total == len(rows)
    assert no_vendor == sum(1 for row in rows if not row[0]) == 42510
    assert negative == sum(1 for row in rows if any(row[i] and Decimal(row[i]) < 0 for i in amounts))
    assert outside == 9
    pickup = header.index("pulocationid")
    assert unknown_zone == sum(1 for row in rows if row[pickup] in ("264", "265"))


def test_a_republished_month_replaces_its_slice_and_nothing_else(make_pipeline, db, project, tmp_path):
    green = project.taxi("green")
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-09", header, rows[5000:5100])
    write_month(tmp_path, "green", "2020-10", header, rows[:1000])
    make_pipeline(source=tmp_path).run([(green, Month(2020, 9)), (green, Month(2020, 10))])
    before = mart(db)
    september = {key: value for key, value in before.items() if key[1] == "2020-09"}

    path = write_month(tmp_path, "green", "2020-10", header, republished_rows(header, rows))
    result = make_pipeline(source=tmp_path).run([(green, Month(2020, 10))])
    assert not result.failed, result

    after = mart(db)
    october = {key: value for key, value in after.items() if key[1] == "2020-10"}
    assert trips_and_totals(october) == expected_mart("Green", "2020-10", path)
    assert {key: value for key, value in after.items() if key[1] == "2020-09"} == september  # untouched
    [(fact_trips,)] = fetch(
        db, "select count(*) from nyc_taxi_core.fact_trips where file_month = '2020-10-01'"
    )
    assert fact_trips == expected_month(path, "2020-10").rows_loaded == 900


def test_a_month_backfilled_late_is_built_too(make_pipeline, dbt, db, project, tmp_path):
    """The reference's `pickup > max(pickup)` skips it; file months do not."""
    green = project.taxi("green")
    header, rows = read_rows(GREEN_2020_10)
    for month, part in (("2020-10", rows[:300]), ("2020-08", rows[300:500]), ("2020-09", rows[500:600])):
        write_month(tmp_path, "green", month, header, part)
    pipeline = make_pipeline(source=tmp_path)
    pipeline.run([(green, Month(2020, 10))])

    pipeline.run([(green, Month(2020, 8))])  # an older month, later: the runner names the months it loaded
    assert pipeline.load_month(green, Month(2020, 9)).status == "loaded"  # loaded without building downstream
    dbt.build()  # a plain build picks up what was loaded since the models were built

    counts = dict(
        fetch(db, "select to_char(file_month, 'YYYY-MM'), count(*) from nyc_taxi_core.fact_trips group by 1")
    )
    assert counts == {"2020-08": 200, "2020-09": 100, "2020-10": 300}


def test_a_months_own_build_refreshes_only_that_month(make_pipeline, dbt, db, project, tmp_path):
    green = project.taxi("green")
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-09", header, rows[:100])
    write_month(tmp_path, "green", "2020-10", header, rows[100:300])
    make_pipeline(source=tmp_path).run([(green, Month(2020, 9)), (green, Month(2020, 10))])
    with db.cursor() as cursor:  # mark both months' rows of the mart, to see which months a build rewrites
        cursor.execute("update nyc_taxi_core.dm_monthly_zone_revenue set revenue_zone = 'marked'")

    dbt.build(variables={"taxi": "green", "month": "2020-10"})  # the month is loaded: nothing to ingest

    marked = fetch(
        db,
        "select to_char(file_month, 'YYYY-MM'), count(*) filter (where revenue_zone = 'marked'), count(*) > 0"
        " from nyc_taxi_core.dm_monthly_zone_revenue group by 1 order by 1",
    )
    assert marked[0][:2] == ("2020-09", fetch(db, _MART_ROWS, ("2020-09-01",))[0][0])
    assert marked[1] == ("2020-10", 0, True)


_MART_ROWS = "select count(*) from nyc_taxi_core.dm_monthly_zone_revenue where file_month = %s"
RECONCILE = "assert_trip_totals_reconcile"


def test_reconciliation_passes_on_the_loaded_months(make_pipeline, dbt, db, project):
    make_pipeline().run([(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))])

    results = dbt.invoke(["test", "--select", RECONCILE]).results
    assert [str(r.status) for r in results if r.node.name == RECONCILE] == ["pass"]


@pytest.mark.parametrize(
    "tamper",
    [
        "delete from nyc_taxi_core.dm_monthly_zone_revenue where pickup_location_id = 48",
        "update nyc_taxi_core.dm_monthly_zone_revenue set revenue_monthly_tip_amount"
        " = revenue_monthly_tip_amount + 0.01 where pickup_location_id = 48",
        # fact_trips on Postgres is a view: one that loses rows, or counts a row twice
        "create or replace view nyc_taxi_core.fact_trips as select * from nyc_taxi_core.fact_trips_whole"
        " where pickup_location_id is distinct from 48",
        "create or replace view nyc_taxi_core.fact_trips as select * from nyc_taxi_core.fact_trips_whole"
        " union all (select * from nyc_taxi_core.fact_trips_whole limit 1)",
    ],
    ids=["mart misses a zone", "mart amount off by a cent", "fact loses rows", "fact doubles a row"],
)
def test_reconciliation_fails_when_a_layer_disagrees(make_pipeline, dbt, db, project, tamper):
    make_pipeline().run([(project.taxi("yellow"), Month(2020, 7))])
    with db.cursor() as cursor:
        cursor.execute("alter view nyc_taxi_core.fact_trips rename to fact_trips_whole")
        cursor.execute("create view nyc_taxi_core.fact_trips as select * from nyc_taxi_core.fact_trips_whole")
        cursor.execute(tamper)

    with pytest.raises(DbtError, match=r"Got \d+ results?, configured to fail"):
        dbt.invoke(["test", "--select", RECONCILE])


def test_source_freshness_comes_from_the_ledger(make_pipeline, dbt, db, project):
    make_pipeline().run([(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))])

    results = [r for r in dbt.invoke(["source", "freshness"]).results if r.node.resource_type == "source"]

    loaded_at = dict(
        fetch(db, "select taxi, finished_at from nyc_taxi.load_ledger where state = 'succeeded'")
    )
    assert {r.node.name: str(r.status) for r in results} == {"green_loads": "pass", "yellow_loads": "pass"}
    assert {r.node.name: r.max_loaded_at for r in results} == {
        "green_loads": loaded_at["green"],
        "yellow_loads": loaded_at["yellow"],
    }


def test_docs_generate_documents_the_models(make_pipeline, dbt, project):
    make_pipeline().run([(project.taxi("yellow"), Month(2020, 7))])

    catalog = dbt.invoke(["docs", "generate"])

    documented = {node.split(".")[-1] for node in catalog.nodes}
    assert {"fact_trips", "dm_monthly_zone_revenue", "dim_zones", "stg_green_tripdata"} <= documented
    assert "revenue_monthly_total_amount" in catalog.nodes["model.nyc_taxi.dm_monthly_zone_revenue"].columns
