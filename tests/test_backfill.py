"""Backfills: the plan from the ledger (no download), months loaded in parallel, JSON lines and resume."""

from __future__ import annotations

import json

from conftest import BUNDLED
from reference import expected_month, read_rows, write_month
from test_runner_cli import ledger, rows_of, runner

from runner.pipeline import is_transient

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
MONTHS = ["2020-05", "2020-06", "2020-07", "2020-08"]


def write_months(folder, rows_each: int = 3000) -> dict[str, object]:
    header, rows = read_rows(GREEN_2020_10)
    return {
        month: write_month(folder, "green", month, header, rows[i * rows_each : (i + 1) * rows_each])
        for i, month in enumerate(MONTHS)
    }


def gz(path) -> bytes:
    return path.read_bytes()


def test_the_plan_comes_from_the_ledger_without_downloading(http, make_pipeline, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    files = {
        month: write_month(tmp_path / "v1", "green", month, header, rows[i * 500 : (i + 1) * 500])
        for i, month in enumerate(["2020-04", "2020-05", "2020-06", "2020-07"])
    }
    for month, path in files.items():
        http.files[f"green/green_tripdata_{month}.csv.gz"] = gz(path)
    http.failures["green/green_tripdata_2020-07.csv.gz"] = [403]  # a permanent error: no retries
    pipeline = make_pipeline(source=http.url)
    green = project.taxi("green")
    for month in ("2020-04", "2020-05", "2020-06", "2020-07"):
        pipeline.load_month(green, project.month(month))
    # 2020-05: unchanged, but no copy at hand to compare; 2020-06: republished, one row less
    (tmp_path / "cache" / "green" / "green_tripdata_2020-05.csv.gz").unlink()
    http.files["green/green_tripdata_2020-06.csv.gz"] = gz(
        write_month(tmp_path / "v2", "green", "2020-06", header, rows[1000:1499])
    )
    http.requests.clear()

    months = [(green, project.month(m)) for m in ("2020-03", "2020-04", "2020-05", "2020-06", "2020-07")]
    plan = {str(p.month): (p.action, p.reason) for p in pipeline.plan(months)}

    assert http.requests == []  # HEAD requests only: nothing downloaded
    assert plan["2020-03"] == ("load", "not loaded; the source has no file yet")
    assert plan["2020-04"] == ("skip", "loaded from an identical file")  # cached copy, same ETag
    assert plan["2020-05"] == ("check", "loaded, same size: the downloaded file's checksum decides")
    assert plan["2020-06"][0] == "reload" and "size" in plan["2020-06"][1]
    assert plan["2020-07"][0] == "retry" and "HTTP 403" in plan["2020-07"][1]

    result = pipeline.run(months[1:])
    status = {str(o.month): o.status for o in result.outcomes}
    assert status == {"2020-04": "skipped", "2020-05": "skipped", "2020-06": "replaced", "2020-07": "loaded"}
    assert http.requests.count("green/green_tripdata_2020-04.csv.gz") == 0  # skipped by the plan


def test_parallel_backfill_loads_every_month_once(db, warehouse_env, tmp_path):
    files = write_months(tmp_path / "files")
    log = tmp_path / "backfill.jsonl"

    done = runner(
        *("backfill", "--taxi", "green", "--start", MONTHS[0], "--end", MONTHS[-1]),
        *("--source", str(tmp_path / "files"), "--jobs", "2", "--json", "--log-file", str(log)),
        env=warehouse_env,
        cache=tmp_path / "cache",
    )

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(line["month"] for line in lines if "month" in line) == MONTHS
    assert lines[-1]["summary"] == {"loaded": 4} and lines[-1]["resume"] is None
    for month, path in files.items():
        ids = rows_of(
            db,
            "nyc_taxi.green_tripdata",
            f"select unique_row_id from nyc_taxi.green_tripdata where file_month = '{month}-01'",
        )
        assert sorted(r["unique_row_id"] for r in ids) == sorted(expected_month(path, month).kept)
    assert sorted(r["state"] for r in ledger(db)) == ["succeeded"] * 4
    # the models downstream were built once, for all four months
    fact = rows_of(db, "nyc_taxi_core.fact_trips", "select count(*) as trips from nyc_taxi_core.fact_trips")
    assert fact == [{"trips": 4 * 3000}]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum("plan" in record for record in logged) == 4 and "summary" in logged[-1]

    again = runner(
        *("backfill", "--taxi", "green", "--start", MONTHS[0], "--end", MONTHS[-1]),
        *("--source", str(tmp_path / "files"), "--jobs", "2", "--json"),
        env=warehouse_env,
        cache=tmp_path / "cache",
    )
    assert json.loads(again.stdout.splitlines()[-1])["summary"] == {"skipped": 4}


def test_dry_run_prints_the_plan_and_loads_nothing(db, warehouse_env, tmp_path):
    write_months(tmp_path / "files")

    planned = runner(
        *("backfill", "--taxi", "green", "--start", "2020-04", "--end", MONTHS[-1]),
        *("--source", str(tmp_path / "files"), "--dry-run", "--json"),
        env=warehouse_env,
        cache=tmp_path / "cache",
    )

    assert planned.returncode == 0, planned.stderr
    plan = [json.loads(line) for line in planned.stdout.splitlines()]
    assert [(p["month"], p["action"]) for p in plan] == [("2020-04", "load")] + [(m, "load") for m in MONTHS]
    assert ledger(db) == []


def test_a_failed_month_exits_1_with_the_command_that_resumes(db, warehouse_env, tmp_path):
    files = write_months(tmp_path / "files")
    files["2020-06"].write_bytes(files["2020-06"].read_bytes()[:500])  # truncated

    done = runner(
        *("backfill", "--taxi", "green", "--start", MONTHS[0], "--end", MONTHS[-1]),
        *("--source", str(tmp_path / "files"), "--jobs", "2", "--json", "--quiet"),
        env=warehouse_env,
        cache=tmp_path / "cache",
    )

    assert done.returncode == 1
    # every option that says what the run reads or writes comes back: here the source and the jobs
    resume = (
        f"runner backfill --taxi green --start 2020-06 --end 2020-06 --source {tmp_path / 'files'} --jobs 2"
    )
    assert resume in done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["summary"] == {"loaded": 3, "failed": 1} and summary["resume"] == resume
    states = {str(r["file_month"])[:7]: r["state"] for r in ledger(db)}
    assert states == {
        "2020-05": "succeeded",
        "2020-06": "failed",
        "2020-07": "succeeded",
        "2020-08": "succeeded",
    }


def test_lost_connections_are_transient_and_bad_files_are_not():
    assert is_transient(
        "server closed the connection unexpectedly\n\tThis probably means the server terminated"
    )
    assert is_transient('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    # BigQuery cancelling a merge that overlapped another transaction on the same table
    assert is_transient(
        "Database Error in model green_tripdata: Transaction is aborted due to concurrent update against "
        "table proj:nyc_taxi.load_ledger."
    )
    assert not is_transient("green_tripdata_2020-10.csv.gz (green 2020-10): truncated or corrupt gzip")
    assert not is_transient("not published at http://x/green/green_tripdata_2020-10.csv.gz (HTTP 404)")


def test_a_skipped_month_still_ends_a_load_whose_loader_died(
    make_pipeline, dbt, db, pg_server, project, tmp_path
):
    """A reload killed mid-way leaves a `running` row; the next run skips the month but ends that row."""
    green, october = project.taxi("green"), project.month("2020-10")
    pipeline = make_pipeline()
    assert pipeline.load_month(green, october).status == "loaded"
    other = make_pipeline()  # plays a runner: holds the month's runner lock, opens a load, dies
    with other.warehouse.runner_lock("green", october) as loader:
        dbt.run_operation(
            "tripdata_begin_load",
            {"taxi": "green", "month": "2020-10", "load_id": "killed-1", "loader": loader},
        )
        (opened,) = [row for row in ledger(db) if row["load_id"] == "killed-1"]
        assert (opened["loader_pid"], opened["state"]) == (loader["pid"], "running")
        other.warehouse.close()

    result = pipeline.run([(green, october)])

    assert [o.status for o in result.outcomes] == ["skipped"]
    states = {r["load_id"]: (r["state"], r["error"]) for r in ledger(db)}
    assert states["killed-1"] == ("failed", "interrupted: the loader stopped before finishing")
