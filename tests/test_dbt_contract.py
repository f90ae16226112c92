"""dbt alone (`dbt build --vars '{taxi: .., month: ..}'`) keeps the month contract in each of its branches.

Landed by raw_dir, by a COPY into the landing table (Kestra), or not at all; a rerun that changes
nothing; faults recorded; bad vars refused before any SQL runs; two builds of one month at once.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pytest
from conftest import BUNDLED
from reference import csv_bytes, expected_month, read_rows, write_month

from runner.dbt import DbtError

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"


def build(dbt, **variables):
    return dbt.build(select=["green_tripdata"], variables=variables)


def ledger_rows(db) -> list[dict]:
    with db.cursor() as cursor:
        cursor.execute("select * from nyc_taxi.load_ledger order by started_at")
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def month_ids(db, month: str = "2020-10") -> dict[str, str]:
    with db.cursor() as cursor:
        cursor.execute(
            "select unique_row_id, load_id from nyc_taxi.green_tripdata where file_month = %s",
            (f"{month}-01",),
        )
        return dict(cursor.fetchall())


def test_plain_build_makes_the_tables_on_an_empty_warehouse(dbt, db):
    dbt.build(select=["tag:ingestion"])
    with db.cursor() as cursor:
        cursor.execute(
            "select to_regclass('nyc_taxi.green_tripdata'), to_regclass('nyc_taxi.yellow_tripdata'),"
            " to_regclass('nyc_taxi.load_ledger')"
        )
        assert all(cursor.fetchone())


def test_raw_dir_lands_and_merges_then_a_rerun_changes_nothing(dbt, db, raw_dir):
    shutil.copy(GREEN_2020_10, raw_dir / "green")
    expected = expected_month(GREEN_2020_10, "2020-10")

    build(dbt, taxi="green", month="2020-10", raw_dir=str(raw_dir))
    first = month_ids(db)
    assert set(first) == set(expected.kept)
    (load,) = ledger_rows(db)
    assert (load["state"], load["action"], load["loaded_by"]) == ("succeeded", "loaded", "dbt raw_dir")
    assert load["rows_in_file"] == expected.rows_in_file
    assert load["pickups_outside_month"] == expected.pickups_outside_month
    assert load["bytes"] == GREEN_2020_10.stat().st_size
    assert load["source_url"] == f"file://{raw_dir}/green/green_tripdata_2020-10.csv.gz"

    build(dbt, taxi="green", month="2020-10", raw_dir=str(raw_dir))
    assert month_ids(db) == first  # same rows, same load ids
    assert ledger_rows(db)[-1]["action"] == "unchanged"


def test_landing_table_rows_are_merged(dbt, db, pg_server):
    """The Kestra path: open the load, COPY the file into the landing table, then dbt build."""
    dbt.run_operation(
        "tripdata_begin_load",
        {"taxi": "green", "month": "2020-10", "load_id": "kestra-1", "loaded_by": "kestra"},
    )
    header, _ = read_rows(GREEN_2020_10)
    with pg_server.connect() as connection, connection.cursor() as cursor, gzip.open(GREEN_2020_10) as csv:
        cursor.copy_expert(
            f"copy nyc_taxi_landing.green_tripdata_2020_10 ({', '.join(header)})"
            " from stdin with (format csv, header)",
            csv,
        )
    build(dbt, taxi="green", month="2020-10", load_id="kestra-1")
    assert len(month_ids(db)) == expected_month(GREEN_2020_10, "2020-10").rows_loaded
    (load,) = ledger_rows(db)
    assert (load["load_id"], load["state"], load["loaded_by"]) == ("kestra-1", "succeeded", "kestra")


def test_landing_rows_without_a_load_id_are_merged_and_recorded(dbt, db, pg_server):
    dbt.run_operation("tripdata_begin_load", {"taxi": "green", "month": "2020-10", "load_id": "opened"})
    header, rows = read_rows(GREEN_2020_10)
    with pg_server.connect() as connection, connection.cursor() as cursor:
        cursor.copy_expert(
            f"copy nyc_taxi_landing.green_tripdata_2020_10 ({', '.join(header)})"
            " from stdin with (format csv, header)",
            io.BytesIO(csv_bytes(header, rows[:50])),
        )
    build(dbt, taxi="green", month="2020-10")
    assert len(month_ids(db)) == 50
    assert ledger_rows(db)[-1]["loaded_by"] == "dbt landing table"


def test_a_loaded_month_with_nothing_landed_is_left_as_it_is(dbt, db, raw_dir):
    shutil.copy(GREEN_2020_10, raw_dir / "green")
    build(dbt, taxi="green", month="2020-10", raw_dir=str(raw_dir))
    before = month_ids(db)
    build(dbt, taxi="green", month="2020-10")  # no raw_dir, nothing landed
    assert month_ids(db) == before
    assert len(ledger_rows(db)) == 1  # nothing happened, so nothing to record


def test_nothing_to_merge_fails_naming_the_month_and_the_ways_to_land_it(dbt, db):
    with pytest.raises(DbtError) as failure:
        build(dbt, taxi="green", month="2019-01")
    message = str(failure.value)
    assert "green 2019-01: nothing to merge" in message
    for way in ("runner load --taxi green --month 2019-01", "raw_dir", "CopyIn"):
        assert way in message


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        (
            {"taxi": "purple", "month": "2019-01"},
            "taxi=purple is not a known taxi type: use one of fhv, green, yellow",
        ),
        ({"taxi": "green", "month": "2019-13"}, "month=2019-13 is not a month: use YYYY-MM"),
        ({"taxi": "green", "month": "2019-1"}, "month=2019-1 is not a month"),
        ({"taxi": "green", "month": "2018-12"}, "outside the project's range 2019-01 to 2021-07"),
        ({"taxi": "green", "month": "2021-08"}, "outside the project's range"),
        ({"taxi": "green", "month": "2019-01'; drop table x; --"}, "is not a month"),
        ({"taxi": "green"}, "set both vars, taxi and month"),
        (
            {"taxi": "green", "month": "2020-10", "raw_dir": "/tmp/x'; drop"},
            "raw_dir=/tmp/x'; drop must be an absolute",
        ),
        ({"taxi": "green", "month": "2020-10", "raw_dir": "relative/dir"}, "must be an absolute folder path"),
    ],
)
def test_bad_vars_fail_before_any_sql_runs(dbt, db, variables, says):
    with pytest.raises(DbtError) as failure:
        dbt.build(variables=variables)
    assert says in str(failure.value)
    with db.cursor() as cursor:
        cursor.execute("select to_regclass('nyc_taxi.load_ledger')")
        ledger = cursor.fetchone()[0]
    if ledger:  # the tables may exist; no load may have been recorded
        assert ledger_rows(db) == []


def test_month_range_is_configurable(dbt):
    with pytest.raises(DbtError) as failure:
        dbt.build(variables={"taxi": "green", "month": "2019-05", "first_month": "2020-01"})
    assert "outside the project's range 2020-01 to 2021-07" in str(failure.value)


@pytest.mark.parametrize("damage", ["missing", "truncated", "header"])
def test_raw_dir_faults_fail_the_month_and_are_recorded(dbt, db, raw_dir, damage):
    shutil.copy(GREEN_2020_10, raw_dir / "green")
    build(dbt, taxi="green", month="2020-10", raw_dir=str(raw_dir))
    before = month_ids(db)
    target = raw_dir / "green" / GREEN_2020_10.name
    header, rows = read_rows(GREEN_2020_10)
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        write_month(raw_dir, "green", "2020-10", header, rows[:5000])
        target.write_bytes(target.read_bytes()[:-2000])
    else:
        write_month(raw_dir, "green", "2020-10", list(reversed(header)), rows[:5000])

    with pytest.raises(DbtError) as failure:
        build(dbt, taxi="green", month="2020-10", raw_dir=str(raw_dir))

    message = str(failure.value)
    assert "green_tripdata_2020-10.csv.gz (green 2020-10)" in message
    assert {"missing": "not found", "truncated": "truncated or corrupt gzip", "header": "unexpected header"}[
        damage
    ] in message
    assert month_ids(db) == before
    if damage != "missing":  # the probe fails before the load opens for a missing file
        last = ledger_rows(db)[-1]
        assert last["state"] == "failed" and "green 2020-10" in last["error"]


def test_concurrent_dbt_builds_of_one_month_leave_no_duplicates(dbt, db, raw_dir, warehouse_env):
    """dbt alone (or Kestra) bypassing the runner: the month lock serialises the merges."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    shutil.copy(GREEN_2020_10, raw_dir / "green")
    dbt.build(select=["tag:ingestion"])  # the tables exist: the race is on the month
    command = [
        str(Path(sys.executable).parent / "dbt"),
        "build",
        "--select",
        "green_tripdata",
        "--profiles-dir",
        str(ROOT / "profiles"),
        "--vars",
        f"{{taxi: green, month: 2020-10, raw_dir: {raw_dir}, force: true}}",
    ]
    env = {**os.environ, **warehouse_env}
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(month_ids(db)) == expected_month(GREEN_2020_10, "2020-10").rows_loaded
    assert [row["state"] for row in ledger_rows(db)] == ["succeeded", "succeeded"]


def test_dbt_calls_leave_nothing_behind_for_later_calls_to_pay_for(dbt) -> None:
    """A backfill calls dbt a few times per month in one process. dbt-adapters adds one entry per
    call to a module-level list of behavior flags, each rendered again at every later call: the
    runner's calls put it back, so a month costs the same at any point of a long run."""
    from dbt.adapters.base import impl

    flags_before = list(impl.DEFAULT_BASE_BEHAVIOR_FLAGS)
    for _ in range(3):
        listed = dbt.invoke(["ls", "--select", "dim_zones", "--resource-type", "model", "--output", "name"])
        assert list(listed) == ["dim_zones"]
    assert flags_before == impl.DEFAULT_BASE_BEHAVIOR_FLAGS
