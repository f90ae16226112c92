"""A backfill plans from the ledger without downloading, loads each month once, and says how to resume.

Also what is retried as the warehouse going away (a lost connection, a busy BigQuery) and what is not
(a bad statement, a bad request, an unknown taxi type).
"""

from __future__ import annotations

import json

import psycopg2
import pytest
from conftest import BUNDLED
from reference import expected_month, read_rows, write_month
from test_runner_cli import ledger, rows_of, runner

from runner.dbt import Dbt, DbtError
from runner.warehouse import is_connection_failure

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


def failure_of(connection, statement: str) -> Exception:
    with pytest.raises(psycopg2.Error) as raised, connection.cursor() as cursor:
        cursor.execute(statement)
    return raised.value


def test_a_server_going_away_is_transient_and_a_bad_statement_is_not(pg_server):
    """Told apart by psycopg2's exception types and SQLSTATEs, on real failures of the test server."""
    victim, other = pg_server.connect(), pg_server.connect()
    other.autocommit = True
    with victim.cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        (pid,) = cursor.fetchone()
    victim.commit()
    with other.cursor() as cursor:
        cursor.execute("select pg_terminate_backend(%s)", (pid,))
    assert is_connection_failure(failure_of(victim, "select 1"))  # terminated (57P01), then closed
    assert is_connection_failure(failure_of(victim, "select 1"))  # and closed: InterfaceError
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(host="127.0.0.1", port=1, dbname="x", connect_timeout=2)
    assert is_connection_failure(refused.value)

    assert not is_connection_failure(failure_of(other, "select 1/0"))
    assert not is_connection_failure(failure_of(other, "selec 1"))
    # a cancelled statement is an OperationalError too (57014), but the server is still there
    assert not is_connection_failure(failure_of(other, "set statement_timeout = 1; select pg_sleep(1)"))
    other.close()


def test_dbt_failures_say_whether_the_warehouse_went_away(dbt, warehouse_env, monkeypatch, project):
    with pytest.raises(DbtError) as refused_taxi:
        dbt.run_operation("tripdata_end_abandoned_loads", {"taxi": "purple", "month": "2020-10"})
    assert not refused_taxi.value.transient

    monkeypatch.setenv("PGPORT", "1")  # nothing listens there
    unreachable = Dbt(project_dir=project.root, profiles_dir=project.root / "profiles")
    with pytest.raises(DbtError) as unreachable_failure:
        unreachable.run_operation("tripdata_end_abandoned_loads", {"taxi": "green", "month": "2020-10"})
    assert unreachable_failure.value.transient, str(unreachable_failure.value)


def test_google_server_errors_are_transient_and_bad_requests_are_not():
    from google.api_core import exceptions

    from runner.bigquery import is_busy

    assert is_busy(exceptions.ServiceUnavailable("backend error"))
    assert is_busy(exceptions.TooManyRequests("rate limit"))
    assert not is_busy(exceptions.BadRequest("bad row"))
    assert not is_busy(exceptions.NotFound("no such table"))


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
