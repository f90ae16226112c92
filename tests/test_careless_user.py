"""A careless or unlucky user gets a clear answer and a warehouse that stays true.

Against the real server: a month removed again, a stale
`running` load shown as interrupted, a failed month cleared by the next run, options that survive into
the resume command, sources and caches that are not what they seem, and the smaller slips."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import pytest
from conftest import BUNDLED, ROOT, free_port
from reference import read_rows, write_month
from runner_process import RUNNER, ledger, query

from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"


def run(*args: str, env: dict[str, str], tmp_path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNNER, *args],
        cwd=ROOT,
        env={**os.environ, **env, "RUNNER_CACHE_DIR": str(tmp_path / "cache"), **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def status(env, tmp_path) -> dict[tuple[str, str], dict]:
    done = run("status", "--json", env=env, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    return {(row["taxi"], row["file_month"]): row for row in map(json.loads, done.stdout.splitlines())}


def two_months(tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path / "src", "green", "2020-09", header, rows[:300])
    write_month(tmp_path / "src", "green", "2020-10", header, rows[300:800])
    return tmp_path / "src"


# --- runner remove -------------------------------------------------------------------------------


def test_remove_takes_a_month_out_of_the_tables_and_the_models(
    make_pipeline, db, project, tmp_path, warehouse_env
):
    green = project.taxi("green")
    source = two_months(tmp_path)
    assert not make_pipeline(source=source).run([(green, Month(2020, 9)), (green, Month(2020, 10))]).failed
    mart = (
        "select to_char(file_month, 'YYYY-MM') as month, sum(total_monthly_trips) as trips"
        " from nyc_taxi_core.dm_monthly_zone_revenue group by 1 order by 1"
    )
    assert [(r["month"], r["trips"]) for r in query(db, mart)] == [("2020-09", 300), ("2020-10", 500)]

    done = run(
        "remove",
        "--taxi",
        "green",
        "--month",
        "2020-10",
        "--yes",
        "--reason",
        "wrong file",
        env=warehouse_env,
        tmp_path=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert "removed green 2020-10 (500 rows of load" in done.stdout
    assert query(db, "select to_regclass('nyc_taxi.green_tripdata_2020_10') as part")[0]["part"] is None
    assert (
        query(db, "select count(*) as n from nyc_taxi_core.fact_trips where file_month = '2020-10-01'")[0][
            "n"
        ]
        == 0
    )
    assert [(r["month"], r["trips"]) for r in query(db, mart)] == [("2020-09", 300)]  # September untouched
    last = ledger(db, "2020-10")[-1]
    assert (last["state"], last["action"], last["rows_loaded"], last["error"]) == (
        "succeeded",
        "removed",
        0,
        "wrong file",
    )
    states = status(warehouse_env, tmp_path)
    assert (
        states[("green", "2020-10")]["action"] == "removed" and states[("green", "2020-10")]["models"] is None
    )
    assert states[("green", "2020-09")]["models"] == "current"

    # the month is not loaded any more: the next run loads it as new, from the same file
    again = make_pipeline(source=source).run([(green, Month(2020, 10))])
    assert [o.status for o in again.outcomes] == ["loaded"] and not again.failed


def test_remove_clears_a_month_that_only_failed(make_pipeline, dbt, db, project, tmp_path, warehouse_env):
    (tmp_path / "src" / "green").mkdir(parents=True)
    (tmp_path / "src" / "green" / "green_tripdata_2020-10.csv.gz").write_bytes(b"not gzip")
    assert make_pipeline(source=tmp_path / "src").load_month(project.taxi("green"), Month(2020, 10)).failed
    assert status(warehouse_env, tmp_path)[("green", "2020-10")]["state"] == "failed"

    dbt.run_operation("tripdata_remove_month", {"taxi": "GREEN", "month": "2020-10"})  # dbt alone, any case

    cleared = status(warehouse_env, tmp_path)[("green", "2020-10")]
    assert (cleared["state"], cleared["action"]) == ("succeeded", "removed")


# --- the ledger and status tell the truth ---------------------------------------------------------


def test_a_load_whose_loader_is_gone_shows_as_interrupted_at_once(
    make_pipeline, db, project, tmp_path, warehouse_env
):
    assert not make_pipeline().run([(project.taxi("yellow"), Month(2020, 7))]).failed
    with db.cursor() as cursor:  # a load cut off with its session (kill -9, the server restarting)
        cursor.execute(
            "insert into nyc_taxi.load_ledger (load_id, taxi, file_month, filename, state, started_at,"
            " loaded_by, loader_pid, loader_started_at)"
            " values ('gone', 'green', '2020-10-01', 'f', 'running', now(), 'runner', 2147483000, now())"
        )
    assert status(warehouse_env, tmp_path)[("green", "2020-10")]["state"] == "interrupted"
    shown = run("status", env=warehouse_env, tmp_path=tmp_path)
    assert "green 2020-10 interrupted:" in shown.stdout and "interrupted" in shown.stdout


def test_a_failed_month_is_fine_once_a_run_finds_it_holds_the_same_file(
    make_pipeline, db, project, tmp_path, warehouse_env
):
    green = project.taxi("green")
    source = two_months(tmp_path)
    assert not make_pipeline(source=source).run([(green, Month(2020, 10))]).failed
    header, rows = read_rows(GREEN_2020_10)
    broken = tmp_path / "broken"
    write_month(broken, "green", "2020-10", [*header, "x"], [[*row, "1"] for row in rows[:10]])
    assert make_pipeline(source=broken).load_month(green, Month(2020, 10)).failed
    assert status(warehouse_env, tmp_path)[("green", "2020-10")]["state"] == "failed"

    result = make_pipeline(source=source).run([(green, Month(2020, 10))])  # the file the month holds

    assert [o.status for o in result.outcomes] == ["skipped"]
    shown = status(warehouse_env, tmp_path)[("green", "2020-10")]
    assert (shown["state"], shown["action"], shown["rows_loaded"]) == ("succeeded", "unchanged", 500)
    before = [row["load_id"] for row in ledger(db, "2020-10")]
    make_pipeline(source=source).run([(green, Month(2020, 10))])  # and once fine, a skip records nothing
    assert [row["load_id"] for row in ledger(db, "2020-10")] == before


# --- options, sources and caches --------------------------------------------------------------------


def test_the_resume_command_repeats_every_option_and_works_offline(db, warehouse_env, tmp_path):
    source = two_months(tmp_path)
    (source / "green" / "green_tripdata_2020-10.csv.gz").write_bytes(b"not gzip")
    cache = tmp_path / "my cache"
    done = run(
        "backfill",
        "--taxi",
        "green",
        "--start",
        "2020-09",
        "--end",
        "2020-10",
        "--source",
        str(source),
        "--cache-dir",
        str(cache),
        "--allow-other-month",
        env=warehouse_env,
        tmp_path=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    resume = done.stderr.rsplit("(loaded months are skipped): ", 1)[1].split("\n")[0]
    assert shlex.split(resume) == [
        "runner",
        "backfill",
        "--taxi",
        "green",
        "--start",
        "2020-10",
        "--end",
        "2020-10",
        "--source",
        str(source),
        "--cache-dir",
        str(cache),
        "--allow-other-month",
    ]

    shutil.copy(GREEN_2020_10, source / "green" / "green_tripdata_2020-10.csv.gz")
    resumed = run(*shlex.split(resume)[1:], env=warehouse_env, tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.parametrize("kind", ["missing", "a file", "empty"])
def test_a_source_folder_that_is_not_one_is_a_usage_error(warehouse_env, tmp_path, kind):
    source = tmp_path / "source"
    if kind == "a file":
        source.write_text("not a folder")
    elif kind == "empty":
        source.mkdir()
    done = run(
        "load",
        "--taxi",
        "green",
        "--month",
        "2020-10",
        "--source",
        str(source),
        env=warehouse_env,
        tmp_path=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"--source {source}:" in done.stderr and "the source no longer has the file" not in done.stderr


def test_cache_clean_refuses_a_folder_of_trip_files_it_did_not_download(warehouse_env, tmp_path):
    mine = tmp_path / "tripdata"
    shutil.copytree(BUNDLED, mine)
    done = run("cache", "clean", "--cache-dir", str(mine), env=warehouse_env, tmp_path=tmp_path)
    assert done.returncode == 2 and "is not the runner's download cache" in done.stderr
    assert sorted(p.name for p in mine.rglob("*.csv.gz")) == sorted(p.name for p in BUNDLED.rglob("*.csv.gz"))


# --- the smaller slips ------------------------------------------------------------------------------


def test_a_taxi_in_capitals_is_the_same_taxi_for_the_runner_and_for_dbt(dbt, db, raw_dir):
    shutil.copy(GREEN_2020_10, raw_dir / "green")
    dbt.build(
        select=["green_tripdata"], variables={"taxi": "GREEN", "month": "2020-10", "raw_dir": str(raw_dir)}
    )
    assert query(db, "select count(*) as n from nyc_taxi.green_tripdata")[0]["n"] == 95120


def test_kestra_emit_refuses_a_namespace_kestra_would_refuse(tmp_path):
    done = subprocess.run(
        [*RUNNER, "kestra", "emit", "--namespace", "bad namespace; rm", "--out", str(tmp_path / "flows")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "is not a Kestra namespace" in done.stderr
    assert not (tmp_path / "flows").exists()  # nothing written


def test_gcp_setup_without_the_bigquery_extra_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'google.cloud.bigquery' or name.startswith('google.cloud.bigquery.'):\n"
        "            raise ImportError(name + ' is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    done = subprocess.run(
        [*RUNNER, "gcp", "setup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(blocker)},
    )
    assert done.returncode == 2, done.stderr
    assert "needs the bigquery extra" in done.stderr and "Traceback" not in done.stderr


def test_db_start_on_a_folder_that_is_not_a_cluster_gives_advice_that_works(tmp_path):
    folder = tmp_path / "not-a-cluster"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"mine")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    done = subprocess.run(
        [*RUNNER, "db", "start"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "RUNNER_DATA_DIR": str(folder), "RUNNER_PGPORT": str(free_port())},
    )
    assert done.returncode == 2
    assert (
        "set RUNNER_DATA_DIR to another folder" in done.stderr
        and "reset the embedded server" not in done.stderr
    )
    assert (folder / "photo.jpg").exists()
