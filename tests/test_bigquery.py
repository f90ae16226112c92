"""BigQuery holds the same rows, ledger and models as PostgreSQL for the same files (emulators).

Against a real BigQuery emulator and a GCS emulator started by the session.

What the emulator cannot run (external tables over the bucket, partition pruning itself) is
checked statically in tests/test_bigquery_sql.py. Expected figures come from tests/reference.py, and the
same files are loaded into the session's PostgreSQL: both warehouses must hold the same rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from conftest import BUNDLED, stage_external_sources
from reference import expected_month, read_rows, republished_rows, write_month

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
YELLOW_2020_07 = BUNDLED / "yellow" / "yellow_tripdata_2020-07.csv.gz"


def query(bq, sql: str) -> list[tuple]:
    return [tuple(row.values()) for row in bq.bigquery.query(sql).result()]


def bq_month(bq, taxi: str, month: str) -> dict[str, tuple]:
    """unique_row_id -> (total_amount, pickup, load_id) of a month in BigQuery."""
    pickup = "lpep_pickup_datetime" if taxi == "green" else "tpep_pickup_datetime"
    return {
        row[0]: row[1:]
        for row in query(
            bq,
            f"select unique_row_id, total_amount, {pickup}, load_id from nyc_taxi.{taxi}_tripdata"
            f" where file_month = date '{month}-01'",
        )
    }


def pg_month(db, taxi: str, month: str) -> dict[str, tuple]:
    pickup = "lpep_pickup_datetime" if taxi == "green" else "tpep_pickup_datetime"
    with db.cursor() as cursor:
        cursor.execute(
            f"select unique_row_id, total_amount, {pickup} from nyc_taxi.{taxi}_tripdata"
            " where file_month = %s",
            (f"{month}-01",),
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def values(month_rows: dict[str, tuple]) -> dict[str, tuple]:
    """Comparable across warehouses: (total_amount, pickup) by id, numerics normalised."""
    return {
        key: (None if row[0] is None else Decimal(row[0]).normalize(), row[1])
        for key, row in month_rows.items()
    }


@pytest.mark.parametrize(
    ("taxi", "month", "path"),
    [("green", Month(2020, 10), GREEN_2020_10), ("yellow", Month(2020, 7), YELLOW_2020_07)],
)
def test_real_month_loads_the_same_rows_as_postgres(
    make_bq_pipeline, make_pipeline, bq, db, project, taxi, month, path
):
    outcome = make_bq_pipeline().load_month(project.taxi(taxi), month)
    assert outcome.status == "loaded", outcome.message
    assert make_pipeline().load_month(project.taxi(taxi), month).status == "loaded"

    expected = expected_month(path, str(month))
    in_bigquery, in_postgres = bq_month(bq, taxi, str(month)), pg_month(db, taxi, str(month))
    # the same unique_row_id hex for the same CSV row, computed by each warehouse and by Python
    assert set(in_bigquery) == set(expected.kept) == set(in_postgres)
    assert values(in_bigquery) == values(in_postgres)  # exact numerics, zone-less times, row for row
    assert {row[2] for row in in_bigquery.values()} == {outcome.load_id}

    record = bq.load(outcome.load_id)
    assert record["state"] == "succeeded" and record["action"] == "loaded"
    assert record["rows_in_file"] == expected.rows_in_file
    assert record["rows_loaded"] == expected.rows_loaded
    assert record["pickups_outside_month"] == expected.pickups_outside_month
    assert (record["exact_repeats"], record["same_id_variants"]) == (0, 0)
    # the landing table is gone once merged
    assert [t.table_id for t in bq.bigquery.list_tables(f"{bq.config.project}.{bq.landing_dataset}")] == []


def test_real_month_sums_to_the_cent(make_bq_pipeline, bq, project):
    header, rows = read_rows(GREEN_2020_10)
    total = header.index("total_amount")
    make_bq_pipeline().load_month(project.taxi("green"), Month(2020, 10))

    [(count, amount, no_vendor)] = query(
        bq,
        "select count(*), sum(total_amount), countif(vendorid is null) from nyc_taxi.green_tripdata",
    )

    assert count == len(rows) == 95120
    assert amount == sum(Decimal(row[total]) for row in rows)
    assert no_vendor == sum(1 for row in rows if not row[0]) == 42510


def test_the_main_tables_key_is_tested_here_and_a_repeated_id_fails_it(make_bq_pipeline, bq, bq_dbt, project):
    """BigQuery enforces no key: the data test checks one row per id per file month (on Postgres a
    unique index holds it: tests/test_models.py)."""
    key_test = "dbt_utils_unique_combination_of_columns_green_tripdata_file_month__unique_row_id"
    make_bq_pipeline().load_month(project.taxi("green"), Month(2020, 10))
    results = bq_dbt.invoke(["test", "--select", key_test]).results
    assert [str(r.status) for r in results if r.node.name == key_test] == ["pass"]

    columns = [
        field.name for field in bq.bigquery.get_table(f"{bq.config.project}.nyc_taxi.green_tripdata").schema
    ]
    bq.bigquery.query(
        f"insert into nyc_taxi.green_tripdata ({', '.join(columns)}) select {', '.join(columns)}"
        " from nyc_taxi.green_tripdata where file_month = date '2020-10-01' limit 1"
    ).result()

    with pytest.raises(DbtError, match=r"Got 1 result, configured to fail"):
        bq_dbt.invoke(["test", "--select", key_test])


def test_second_load_changes_nothing_and_a_forced_one_keeps_the_month_whole(make_bq_pipeline, bq, project):
    green, month = project.taxi("green"), Month(2020, 10)
    first = make_bq_pipeline().load_month(green, month)
    before = bq_month(bq, "green", "2020-10")
    blob = bq.storage.bucket(bq.config.bucket).get_blob(bq.object_name(green, month))

    again = make_bq_pipeline().load_month(green, month)
    assert again.status == "skipped" and again.load_id == first.load_id
    assert bq_month(bq, "green", "2020-10") == before

    forced = make_bq_pipeline(force=True).load_month(green, month)
    assert forced.status == "replaced", forced.message
    after = bq_month(bq, "green", "2020-10")
    assert set(after) == set(before)
    assert {row[2] for row in after.values()} == {forced.load_id}
    # the object in the bucket had the same bytes: not uploaded again
    assert (
        bq.storage.bucket(bq.config.bucket).get_blob(bq.object_name(green, month)).generation
        == blob.generation
    )


def test_remove_takes_the_month_out_and_records_it(make_bq_pipeline, bq, project):
    green, month = project.taxi("green"), Month(2020, 10)
    pipeline = make_bq_pipeline()
    loaded = pipeline.load_month(green, month)
    assert loaded.status == "loaded", loaded.message

    removed = pipeline.remove_month(green, month, reason="a test")
    assert removed is not None and removed["load_id"] == loaded.load_id
    assert bq_month(bq, "green", "2020-10") == {}
    assert pipeline.current_load(project.taxi("green"), month) is None  # the month holds no load
    (last,) = query(
        bq,
        f"select action, rows_loaded, error from `{bq.config.project}.{bq.config.dataset}.load_ledger`"
        " where state = 'succeeded' order by finished_at desc limit 1",
    )
    assert tuple(last) == ("removed", 0, "a test")


def all_columns(rows: list[tuple]) -> dict[str, tuple]:
    """unique_row_id -> the CSV columns, numerics normalised (BigQuery writes 9 decimals)."""
    return {
        row[-1]: tuple(Decimal(v).normalize() if isinstance(v, Decimal) else v for v in row[:-1])
        for row in rows
    }


def test_republished_file_replaces_its_month_with_the_rows_postgres_keeps(
    make_bq_pipeline, make_pipeline, bq, db, project, tmp_path
):
    green = project.taxi("green")
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-09", header, rows[5000:5100])
    write_month(tmp_path, "green", "2020-10", header, rows[:1000])
    pipeline = make_bq_pipeline(source=tmp_path)
    assert pipeline.load_month(green, Month(2020, 9)).status == "loaded"
    assert pipeline.load_month(green, Month(2020, 10)).status == "loaded"
    september = bq_month(bq, "green", "2020-09")

    path = write_month(tmp_path, "green", "2020-10", header, republished_rows(header, rows))
    expected = expected_month(path, "2020-10")
    outcome = pipeline.load_month(green, Month(2020, 10))
    assert make_pipeline(source=tmp_path).load_month(green, Month(2020, 10)).status == "loaded"

    assert outcome.status == "replaced", outcome.message
    select = f"select {', '.join(green.columns)}, unique_row_id from nyc_taxi.green_tripdata"
    in_bigquery = all_columns(query(bq, f"{select} where file_month = date '2020-10-01'"))
    with db.cursor() as cursor:
        cursor.execute(f"{select} where file_month = '2020-10-01'")
        in_postgres = all_columns(cursor.fetchall())
    assert set(in_bigquery) == set(expected.kept)
    # of the rows sharing an id, both warehouses keep the same one, column for column
    assert in_bigquery == in_postgres
    record = bq.load(outcome.load_id)
    assert (record["rows_in_file"], record["rows_loaded"]) == (expected.rows_in_file, expected.rows_loaded)
    assert (record["exact_repeats"], record["same_id_variants"]) == (
        expected.exact_repeats,
        expected.same_id_variants,
    )
    assert bq_month(bq, "green", "2020-09") == september  # other months are not touched


def test_a_month_held_by_another_load_is_refused_until_that_load_ends(make_bq_pipeline, bq, bq_dbt, project):
    bq_dbt.run_operation("tripdata_begin_load", {"taxi": "green", "month": "2020-10", "load_id": "kestra-1"})

    refused = make_bq_pipeline().load_month(project.taxi("green"), Month(2020, 10))

    assert refused.status == "failed"
    assert "load kestra-1 holds the month until" in refused.message
    assert bq_month(bq, "green", "2020-10") == {}

    bq_dbt.run_operation("tripdata_fail_load", {"load_id": "kestra-1", "error": "given up"})
    assert make_bq_pipeline().load_month(project.taxi("green"), Month(2020, 10)).status == "loaded"


def test_dbt_alone_merges_rows_another_loader_landed(bq, bq_dbt, project):
    """`dbt build --vars '{taxi, month}'` on rows a load job landed (as Kestra's BigQuery Load task does)."""
    from google.cloud import bigquery

    bq_dbt.build(select=["green_tripdata"])  # the tables exist, as after any `dbt build`
    green, month = project.taxi("green"), Month(2020, 10)
    bq.upload(green, month, GREEN_2020_10, "-", lambda _: None)
    main = bq.bigquery.get_table(f"{bq.config.project}.{bq.config.dataset}.green_tripdata")
    bq.bigquery.load_table_from_uri(
        f"gs://{bq.config.bucket}/{bq.object_name(green, month)}",
        f"{bq.config.project}.{bq.landing_dataset}.{green.landing_table(month)}",
        job_config=bigquery.LoadJobConfig(
            source_format="CSV", skip_leading_rows=1, schema=main.schema[: len(green.columns)]
        ),
    ).result()

    bq_dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2020-10"})

    expected = expected_month(GREEN_2020_10, "2020-10")
    assert set(bq_month(bq, "green", "2020-10")) == set(expected.kept)
    [(loaded_by, state, rows_loaded)] = query(
        bq, "select loaded_by, state, rows_loaded from nyc_taxi.load_ledger"
    )
    assert (loaded_by, state, rows_loaded) == ("dbt landing table", "succeeded", expected.rows_loaded)

    # nothing landed now, no bucket: the month is loaded, so there is nothing to do
    bq_dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2020-10"})
    assert query(bq, "select count(*) from nyc_taxi.load_ledger") == [(1,)]


def test_dbt_alone_without_a_file_names_the_month_and_the_ways_to_land_it(bq, bq_dbt):
    with pytest.raises(DbtError) as failure:
        bq_dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2019-03"})
    assert "green 2019-03: nothing to merge" in str(failure.value)
    assert "dbt run-operation stage_external_sources --vars '{taxi: green, month: 2019-03}'" in str(
        failure.value
    )


def test_raw_dir_is_for_postgres_and_bigquery_is_told_the_external_table_way(bq, bq_dbt):
    with pytest.raises(DbtError) as failure:
        bq_dbt.build(
            select=["green_tripdata"], variables={"taxi": "green", "month": "2019-03", "raw_dir": "gs://b"}
        )
    assert "var raw_dir is for Postgres" in str(failure.value)
    assert "stage_external_sources" in str(failure.value)
    # refused before anything was made or recorded
    assert list(bq.bigquery.list_tables(f"{bq.config.project}.{bq.config.dataset}")) == []


def test_stage_external_sources_makes_the_landing_table_of_var_taxi_and_month_only(bq):
    """The emulator makes an ordinary empty table where BigQuery makes the external one (its DDL is
    checked in tests/test_bigquery_sql.py): the name and the selection are what is checked here."""
    staged = stage_external_sources({"taxi": "green", "month": "2020-10"})
    assert staged.success, staged.message
    landing = [t.table_id for t in bq.bigquery.list_tables(f"{bq.config.project}.{bq.landing_dataset}")]
    assert landing == ["green_tripdata_2020_10"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"taxi": "green", "month": "2020-13"}, "var month=2020-13 is not a month"),
        ({"taxi": "purple", "month": "2020-10"}, "var taxi=purple is not a known taxi type"),
        ({"taxi": "green", "month": "2020-10", "gcs_bucket": ""}, "set var gcs_bucket (or GCS_BUCKET)"),
        (
            {"taxi": "green", "month": "2020-10", "gcs_bucket": "b'; drop table x; --"},
            "is not gs://<bucket>/<path>",
        ),
    ],
)
def test_stage_external_sources_refuses_bad_vars_before_any_sql(bq, variables, message):
    staged = stage_external_sources(variables)
    assert not staged.success
    assert message in staged.message
    assert not [statement for statement in staged.sql if "external table" in statement]


def test_settings_missing_are_named(tmp_path, monkeypatch):
    from runner.bigquery import ConfigError, GcpConfig

    monkeypatch.delenv("GCP_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ConfigError, match="GCP_PROJECT is not set"):
        GcpConfig.from_env("nyc_taxi")
    monkeypatch.setenv("GCP_PROJECT", "p")
    monkeypatch.delenv("GCS_BUCKET", raising=False)
    with pytest.raises(ConfigError, match="GCS_BUCKET is not set"):
        GcpConfig.from_env("nyc_taxi")
    assert GcpConfig.from_env("nyc_taxi", need_bucket=False).bucket is None
    monkeypatch.setenv("GCS_BUCKET", "b")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="not a readable file"):
        GcpConfig.from_env("nyc_taxi")


def run_runner(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_sets_up_loads_and_reports_on_bigquery(bq, bq_env):
    env = dict(os.environ)
    setup = run_runner("gcp", "setup", env=env)
    assert setup.returncode == 0, setup.stderr
    assert "bucket gs://taxi-test-bucket: exists, left as it is" in setup.stdout

    loaded = run_runner(
        "load", "--target", "bq", "--taxi", "yellow", "--month", "2020-07", "--source", str(BUNDLED), env=env
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "BigQuery project taxi-test, dataset nyc_taxi" in loaded.stderr

    status = run_runner("status", "--target", "bq", "--json", env=env)
    assert status.returncode == 0, status.stderr
    [line] = [json.loads(line) for line in status.stdout.splitlines() if '"yellow"' in line]
    assert (line["state"], line["rows_loaded"]) == ("succeeded", 266)


def test_credentials_never_reach_the_output(bq_env, tmp_path):
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-real-key"
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps({"type": "service_account", "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n"})
    )
    # against Google (no emulator), with a key file that cannot work: the error must not quote it
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    failed = run_runner("status", "--target", "bq", env=env)
    assert failed.returncode != 0
    assert "service-account key file" in failed.stderr
    assert secret not in failed.stdout + failed.stderr


AMOUNTS = (
    "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "ehail_fee",
    "improvement_surcharge", "congestion_surcharge", "total_amount",
)  # fmt: skip


def fact_figures(rows: list[tuple]) -> dict[tuple, tuple]:
    """(service, file month) -> (trips, every amount's sum), comparable across warehouses."""
    return {
        (service, str(month)[:7]): (trips, *(Decimal(total or 0).normalize() for total in totals))
        for service, month, trips, *totals in rows
    }


def mart_rows(rows: list[tuple]) -> dict[tuple, tuple]:
    """(service, file month, pickup zone) -> (zone name, trips, every revenue sum)."""
    return {
        (service, str(month)[:7], zone): (name, trips, *(Decimal(total).normalize() for total in totals))
        for service, month, zone, name, trips, *totals in rows
    }


def changed_amounts(header: list[str], rows: list[list[str]]) -> list[list[str]]:
    """The same trips republished with corrected amounts: every third one's fare and total up a dollar."""
    fare, total = header.index("fare_amount"), header.index("total_amount")
    changed = [list(row) for row in rows]
    for row in changed[::3]:
        row[fare] = str(Decimal(row[fare]) + 1)
        row[total] = str(Decimal(row[total]) + 1)
    return changed


def test_models_follow_each_load_as_on_postgres(make_bq_pipeline, make_pipeline, bq, db, project, tmp_path):
    """A month, the month republished with changed amounts (--force), a second month: after each run
    (its loads, then the models build: dbt's incremental replacement of the months it changed, on
    BigQuery), fact_trips and the mart hold on BigQuery what they hold on Postgres, month by month."""
    green_header, green_rows = read_rows(GREEN_2020_10)
    yellow_header, yellow_rows = read_rows(YELLOW_2020_07)
    runs = [
        ("green", "2020-10", green_header, green_rows[:3000]),
        ("green", "2020-10", green_header, changed_amounts(green_header, green_rows[:3000])),
        ("yellow", "2020-07", yellow_header, yellow_rows),
    ]
    fact = (
        f"select service_type, file_month, count(*), {', '.join(f'sum({a})' for a in AMOUNTS)}"
        " from nyc_taxi_core.fact_trips group by service_type, file_month"
    )
    revenue = [f"revenue_monthly_{amount}".replace("fare_amount", "fare") for amount in AMOUNTS]
    mart = (
        "select service_type, file_month, pickup_location_id, revenue_zone, total_monthly_trips, "
        f"{', '.join(revenue)} from nyc_taxi_core.dm_monthly_zone_revenue"
    )
    ids = "select trip_id from nyc_taxi_core.fact_trips"
    totals = []
    for taxi, month, header, rows in runs:
        write_month(tmp_path, taxi, month, header, rows)
        plan = [(project.taxi(taxi), Month.parse(month))]
        in_bigquery = make_bq_pipeline(source=tmp_path, force=True).run(plan)
        in_postgres = make_pipeline(source=tmp_path, force=True).run(plan)
        assert not in_bigquery.failed and not in_postgres.failed, (in_bigquery, in_postgres)

        with db.cursor() as cursor:
            cursor.execute(fact)
            postgres_fact = fact_figures(cursor.fetchall())
            cursor.execute(mart)
            postgres_mart = mart_rows(cursor.fetchall())
            cursor.execute(ids)
            postgres_ids = {row[0] for row in cursor.fetchall()}
        assert fact_figures(query(bq, fact)) == postgres_fact, (taxi, month)
        assert mart_rows(query(bq, mart)) == postgres_mart, (taxi, month)  # zone by zone, to the cent
        assert {row[0] for row in query(bq, ids)} == postgres_ids
        totals.append(postgres_fact[("Green", "2020-10")])

    # the republished file's amounts reached the models; the second month left the first as it was
    assert totals[1][0] == totals[0][0] and totals[1][1] == totals[0][1] + 1000
    assert totals[2] == totals[1]
