"""The analytics models hold the trips and revenue of the files, and rebuild only what a run changed.

On PostgreSQL: staging, dim_zones, fact_trips, dm_monthly_zone_revenue; the reconciliation that fails
when a layer disagrees; which months and nodes a run builds and tests. Expected figures are computed
from the CSV in the test (tests/reference.py), not from the models.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from conftest import BUNDLED
from reference import course_figures, expected_month, read_rows, republished_rows, write_month

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
YELLOW_2020_07 = BUNDLED / "yellow" / "yellow_tripdata_2020-07.csv.gz"
COURSE_COMPARISON = "course_comparison"  # analyses/course_comparison.sql


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


class TestTwoLoadedMonths:
    """Read-only checks of one warehouse: green 2020-10 and yellow 2020-07 loaded and built once."""

    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls, pg_server, warehouse_env, dbt, project, tmp_path_factory):
        from conftest import SCHEMAS

        from runner.pipeline import Pipeline, Settings
        from runner.warehouse import Warehouse

        connection = pg_server.connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("; ".join(f"drop schema if exists {schema} cascade" for schema in SCHEMAS))
        connection.close()
        pipeline = Pipeline(
            project=project,
            settings=Settings(source=str(BUNDLED), cache_dir=tmp_path_factory.mktemp("cache")),
            warehouse=Warehouse.for_project(project),
            dbt=dbt,
        )
        result = pipeline.run(
            [(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))]
        )
        pipeline.warehouse.close()
        assert not result.failed, result

    @pytest.fixture
    def db_now(self, pg_server, loaded):
        """A connection to the loaded warehouse, which these tests do not empty."""
        connection = pg_server.connect()
        connection.autocommit = True
        yield connection
        connection.close()

    def test_mart_holds_the_trips_and_revenue_of_the_files(self, loaded, db_now):
        expected = {
            **expected_mart("Green", "2020-10", GREEN_2020_10),
            **expected_mart("Yellow", "2020-07", YELLOW_2020_07),
        }
        assert trips_and_totals(mart(db_now)) == expected
        assert sum(trips for trips, _ in expected.values()) == 95120 + 266
        totals = dict(
            fetch(
                db_now,
                "select service_type, sum(revenue_monthly_total_amount)"
                " from nyc_taxi_core.dm_monthly_zone_revenue group by service_type",
            )
        )
        assert totals == {"Green": Decimal("2196773.09"), "Yellow": Decimal("5685.80")}
        outside = dict(
            fetch(
                db_now,
                "select service_type, sum(pickups_outside_file_month)"
                " from nyc_taxi_core.dm_monthly_zone_revenue group by service_type",
            )
        )
        assert outside == {
            "Green": expected_month(GREEN_2020_10, "2020-10").pickups_outside_month,
            "Yellow": expected_month(YELLOW_2020_07, "2020-07").pickups_outside_month,
        }

    def test_staging_drops_nothing_and_flags_what_is_odd(self, loaded, db_now):
        header, rows = read_rows(GREEN_2020_10)
        amounts = [
            header.index(name)
            for name in header
            if name.endswith(("_amount", "extra", "mta_tax", "fee", "surcharge"))
        ]

        [(total, no_vendor, negative, outside, unknown_zone)] = fetch(
            db_now,
            "select count(*), count(*) filter (where vendor_id is null),"
            " count(*) filter (where has_negative_amount),"
            " count(*) filter (where is_pickup_outside_file_month),"
            " count(*) filter (where pickup_zone = 'Unknown')"
            " from nyc_taxi_core.fact_trips where service_type = 'Green'",
        )
        assert fetch(db_now, "select count(*) from nyc_taxi_staging.stg_green_tripdata") == [(len(rows),)]

        assert total == len(rows)
        assert no_vendor == sum(1 for row in rows if not row[0]) == 42510
        assert negative == sum(1 for row in rows if any(row[i] and Decimal(row[i]) < 0 for i in amounts))
        assert outside == 9
        pickup = header.index("pulocationid")
        assert unknown_zone == sum(1 for row in rows if row[pickup] in ("264", "265"))

    def test_the_course_comparison_explains_the_course_figures_rule_by_rule(self, loaded, dbt, db_now):
        compiled = dbt.invoke(["compile", "--select", COURSE_COMPARISON]).results[0].node.compiled_code
        with db_now.cursor() as cursor:
            cursor.execute(compiled)
            columns = [column.name for column in cursor.description]
            found = {(row[0], row[1].isoformat()[:7]): dict(zip(columns, row, strict=True)) for row in cursor}

        expected_months: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for service, month, path in (
            ("Green", "2020-10", GREEN_2020_10),
            ("Yellow", "2020-07", YELLOW_2020_07),
        ):
            course = course_figures(path, month)
            ours = found[service, month]
            assert (ours["rows_without_vendor"], ours["amount_without_vendor"]) == course.without_vendor
            assert (ours["course_repeat_rows"], ours["course_repeat_amount"]) == course.repeats
            assert (ours["rows_to_other_months"], ours["amount_to_other_months"]) == course.to_other_months
            for pickup_month, (trips, revenue) in course.by_pickup_month.items():
                expected_months[service, pickup_month] = (trips, revenue)
        assert {
            key: (row["course_trips"], row["course_revenue"]) for key, row in found.items()
        } == expected_months
        for row in found.values():  # every trip and cent accounted for, month by month
            assert (
                row["trips"]
                - row["rows_without_vendor"]
                - row["course_repeat_rows"]
                - row["rows_to_other_months"]
                + row["rows_from_other_months"]
                == row["course_trips"]
            )
            assert (
                row["revenue"]
                - row["amount_without_vendor"]
                - row["course_repeat_amount"]
                - row["amount_to_other_months"]
                + row["amount_from_other_months"]
                == row["course_revenue"]
            )

        # the figures the course's rules give for green 2020-10 (issue 16, measured on its own project)
        october = found["Green", "2020-10"]
        assert (october["trips"], october["revenue"]) == (95_120, Decimal("2196773.09"))
        assert (october["rows_without_vendor"], october["amount_without_vendor"]) == (
            42_510,
            Decimal("1298853.15"),
        )
        assert october["course_repeat_rows"] == 244
        assert (october["rows_to_other_months"], october["amount_to_other_months"]) == (9, Decimal("110.92"))
        assert october["course_trips"] == 52_357
        # which of two tied repeats survives is arbitrary in the course's project (174 pairs share
        # their earliest dropoff): its 1,158.07 is one draw; ours, smallest id first, removes 1,049.71
        assert october["course_repeat_amount"] == Decimal("1049.71")
        assert october["course_revenue"] == Decimal("896759.31")

    def test_reconciliation_passes_on_the_loaded_months(self, loaded, dbt):
        results = dbt.invoke(["test", "--select", RECONCILE]).results
        assert [str(r.status) for r in results if r.node.name == RECONCILE] == ["pass"]

    def test_source_freshness_is_the_taxi_type_loaded_least_recently(self, loaded, dbt, db_now):
        results = [r for r in dbt.invoke(["source", "freshness"]).results if r.node.resource_type == "source"]

        loaded_at = dict(
            fetch(
                db_now,
                "select taxi, max(finished_at) from nyc_taxi.load_ledger"
                " where state = 'succeeded' group by taxi",
            )
        )
        assert set(loaded_at) == {"green", "yellow"} and loaded_at["green"] != loaded_at["yellow"]
        assert {r.node.name: str(r.status) for r in results} == {"load_ledger": "pass"}
        assert {r.node.name: r.max_loaded_at for r in results} == {"load_ledger": min(loaded_at.values())}

    def test_docs_generate_documents_the_models(self, loaded, dbt):
        catalog = dbt.invoke(["docs", "generate"])

        documented = {node.split(".")[-1] for node in catalog.nodes}
        assert {"fact_trips", "dm_monthly_zone_revenue", "dim_zones", "stg_green_tripdata"} <= documented
        assert (
            "revenue_monthly_total_amount" in catalog.nodes["model.nyc_taxi.dm_monthly_zone_revenue"].columns
        )


# --- the runner's models build: what it builds and tests, and for which months ---------------------


class Recorder:
    """A reporter that keeps what the models build said it was doing."""

    def __init__(self) -> None:
        self.nodes: list[str] = []
        self.warnings: list[str] = []

    def stage(self, *args: object, **kwargs: object) -> None:
        pass

    def advance(self, *args: object) -> None:
        pass

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def models(self, done: int, total: int, node: str) -> None:
        assert 1 <= done <= total
        self.nodes.append(node)


def months_of(tmp_path, months: dict[str, slice]):
    header, rows = read_rows(GREEN_2020_10)
    for month, part in months.items():
        write_month(tmp_path, "green", month, header, rows[part])
    return tmp_path


def test_a_runs_tests_check_its_months_and_a_plain_build_checks_all(
    make_pipeline, dbt, db, project, tmp_path
):
    green = project.taxi("green")
    source = months_of(tmp_path, {"2020-09": slice(0, 200), "2020-10": slice(200, 500)})
    assert not make_pipeline(source=source).run([(green, Month(2020, 9))]).failed
    with db.cursor() as cursor:  # a fault in September's mart: a repeated zone row
        cursor.execute(
            "insert into nyc_taxi_core.dm_monthly_zone_revenue"
            " select * from nyc_taxi_core.dm_monthly_zone_revenue where file_month = '2020-09-01' limit 1"
        )

    pipeline = make_pipeline(source=source)
    pipeline.reporter = recorder = Recorder()
    result = pipeline.run([(green, Month(2020, 10))])

    assert not result.failed, result.downstream_error  # October's build tests October only
    assert result.models_months == ["2020-10"]
    mart_key = (
        "dbt_utils_unique_combination_of_columns_dm_monthly_zone_revenue"
        "_pickup_location_id__file_month__service_type"
    )
    assert f"test {mart_key}" in recorder.nodes
    with pytest.raises(DbtError, match="Got 1 result"):
        dbt.build()  # the whole history: September's fault is found


def test_a_runs_models_build_takes_only_whats_downstream_of_its_main_tables(make_pipeline, project):
    yellow = project.taxi("yellow")
    first = make_pipeline()
    first.reporter = Recorder()
    assert not first.run([(yellow, Month(2020, 7))]).failed  # a first build: everything

    pipeline = make_pipeline(force=True)
    pipeline.reporter = recorder = Recorder()
    result = pipeline.run([(yellow, Month(2020, 7))])

    assert not result.failed, result.downstream_error
    built = {node.split()[-1] for node in recorder.nodes if not node.startswith("test ")}
    # the seed is unchanged: neither it nor dim_zones is rebuilt; green's staging is untouched
    assert built == {
        "nyc_taxi.yellow_tripdata",
        "nyc_taxi_staging.stg_yellow_tripdata",
        "nyc_taxi_staging.stg_ingestion__loads",  # the ledger is made with the main tables
        "nyc_taxi_core.fact_trips",
        "nyc_taxi_core.dm_monthly_zone_revenue",
        "nyc_taxi_core.model_loads",
    }
    tests = {node.split()[-1] for node in recorder.nodes if node.startswith("test ")}
    assert "assert_trip_totals_reconcile" in tests
    assert not [test for test in tests if "stg_green" in test or "taxi_zone_lookup" in test]


@pytest.mark.parametrize(
    ("relation", "node"),
    [
        ("table nyc_taxi_staging.taxi_zone_lookup", "seed file nyc_taxi_staging.taxi_zone_lookup"),
        ("view nyc_taxi_core.dim_zones", "sql view model nyc_taxi_core.dim_zones"),
    ],
)
def test_a_seed_or_view_changed_since_built_is_rebuilt_with_every_month(
    make_pipeline, db, project, tmp_path, relation, node
):
    green = project.taxi("green")
    source = months_of(tmp_path, {"2020-09": slice(0, 200), "2020-10": slice(200, 500)})
    assert not make_pipeline(source=source).run([(green, Month(2020, 9)), (green, Month(2020, 10))]).failed
    name = relation.split(".")[-1]
    with db.cursor() as cursor:  # built from another version of the file than the project's
        cursor.execute(f"comment on {relation} is 'built from an older file'")
        cursor.execute("update nyc_taxi_core.dm_monthly_zone_revenue set revenue_zone = 'old name'")

    pipeline = make_pipeline(source=source)
    pipeline.reporter = recorder = Recorder()
    result = pipeline.run([(green, Month(2020, 10))])  # loaded from the same file: skipped

    assert [o.status for o in result.outcomes] == ["skipped"]
    assert not result.failed, result.downstream_error
    assert any(f"the project's {name} changed since built" in warning for warning in recorder.warnings)
    assert node in recorder.nodes
    assert result.models_months == ["2020-09", "2020-10"]
    renamed = "select count(*) from nyc_taxi_core.dm_monthly_zone_revenue where revenue_zone = 'old name'"
    assert fetch(db, renamed) == [(0,)]
    assert pipeline.models_state().changed == ()  # the relation says which file it was built from


def test_a_month_dbt_loaded_alone_is_behind_until_the_next_run(make_pipeline, dbt, db, project, raw_dir):
    yellow = project.taxi("yellow")
    assert not make_pipeline().run([(yellow, Month(2020, 7))]).failed
    raw = months_of(raw_dir, {"2020-10": slice(0, 300)})
    # the month's ingestion alone, as a Kestra CopyIn flow or a user's `--select green_tripdata` runs it
    dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2020-10", "raw_dir": str(raw)})
    pipeline = make_pipeline()
    assert pipeline.models_state().behind == (("green", Month(2020, 10)),)
    assert [s["models"] for s in pipeline.month_status() if s["taxi"] == "green"] == ["behind"]

    pipeline.reporter = recorder = Recorder()
    result = pipeline.run([(yellow, Month(2020, 7))])  # a run that skips its only month

    assert [o.status for o in result.outcomes] == ["skipped"] and not result.failed
    assert result.models_behind == ["green 2020-10"] and result.models_months == ["2020-10"]
    assert any("behind the ledger" in warning for warning in recorder.warnings)
    assert pipeline.models_state().behind == ()
    assert fetch(db, _MART_ROWS.replace("count(*)", "sum(total_monthly_trips)"), ("2020-10-01",)) == [(300,)]


def test_postgres_enforces_the_main_tables_key_with_a_unique_index(make_pipeline, dbt, db, project):
    """One row per id per file month, held by the database: a repeated id cannot be stored. The key's
    test here checks that index (a test of the rows, as on BigQuery, could not fail here:
    tests/test_bigquery.py)."""
    import psycopg2

    index_test = "enforced_unique_index_green_tripdata_unique_row_id__file_month"
    make_pipeline().run([(project.taxi("green"), Month(2020, 10))])
    [(definition, unique, valid)] = fetch(
        db,
        "select pg_get_indexdef(indexrelid), indisunique, indisvalid from pg_index"
        " where indexrelid = 'nyc_taxi.green_tripdata_row_id'::regclass",
    )
    # the id first: a month's index build sorts by the id's leading bytes, not by its one file_month
    assert definition.endswith("(unique_row_id, file_month)") and unique and valid
    [(columns,)] = fetch(  # the file's columns and the ingestion's, not the generated id
        db,
        "select string_agg(quote_ident(column_name), ', ' order by ordinal_position)"
        " from information_schema.columns where table_schema = 'nyc_taxi'"
        " and table_name = 'green_tripdata' and is_generated = 'NEVER'",
    )
    with db.cursor() as cursor, pytest.raises(psycopg2.errors.UniqueViolation):
        cursor.execute(
            f"insert into nyc_taxi.green_tripdata ({columns}) select {columns}"
            " from nyc_taxi.green_tripdata where file_month = '2020-10-01' limit 1"
        )
    tests = {node.name for node in dbt.parse().nodes.values() if node.resource_type == "test"}
    assert index_test in tests
    assert not any("green_tripdata_file_month__unique_row_id" in name for name in tests)
    results = dbt.invoke(["test", "--select", index_test]).results
    assert [str(r.status) for r in results if r.node.name == index_test] == ["pass"]

    with db.cursor() as cursor:  # a key nothing enforces any more
        cursor.execute("drop index nyc_taxi.green_tripdata_row_id")
    with pytest.raises(DbtError, match=r"Got 1 result, configured to fail"):
        dbt.invoke(["test", "--select", index_test])
