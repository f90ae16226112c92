"""The `runner` command does what its help says, with real exit codes, run as users run it.

A subprocess against the test server, files over local HTTP.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import BUNDLED, ROOT
from reference import expected_month, read_rows, write_month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"


RUNNER = [sys.executable, "-m", "runner"]


def runner(*args: str, env: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNNER, *args],
        cwd=ROOT,
        env={**os.environ, **env, "RUNNER_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows_of(db, table: str, query: str) -> list[dict]:
    """The query's rows as dicts; none while `table` does not exist yet (nothing was loaded)."""
    with db.cursor() as cursor:
        cursor.execute("select to_regclass(%s)", (table,))
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(query)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def ledger(db) -> list[dict]:
    return rows_of(db, "nyc_taxi.load_ledger", "select * from nyc_taxi.load_ledger order by started_at")


def green_ids(db) -> list[str]:
    return [
        r["unique_row_id"]
        for r in rows_of(db, "nyc_taxi.green_tripdata", "select unique_row_id from nyc_taxi.green_tripdata")
    ]


def test_downloads_over_http_with_retries_and_failures(http, db, warehouse_env, tmp_path):
    http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()
    http.failures["green/green_tripdata_2020-10.csv.gz"] = [500]  # a 500, then success
    good = gzip.decompress(GREEN_2020_10.read_bytes())
    http.files["green/green_tripdata_2020-11.csv.gz"] = gzip.compress(good[:300_000], mtime=0)[
        :-5000
    ]  # cut off

    done = runner(
        "backfill",
        "--taxi",
        "green",
        "--start",
        "2020-09",
        "--end",
        "2020-11",
        "--source",
        http.url,
        env=warehouse_env,
        cache=tmp_path,
    )

    assert done.returncode == 1, done.stderr
    assert http.requests.count("green/green_tripdata_2020-10.csv.gz") == 2
    assert "green_tripdata_2020-09.csv.gz (green 2020-09): not published" in done.stderr
    assert "HTTP 404" in done.stderr
    assert "green_tripdata_2020-11.csv.gz (green 2020-11): truncated or corrupt gzip" in done.stderr
    assert "runner backfill --taxi green --start 2020-09 --end 2020-11" in done.stderr  # how to resume
    states = {(row["file_month"].isoformat()[:7], row["state"]) for row in ledger(db)}
    assert states == {("2020-09", "failed"), ("2020-10", "succeeded"), ("2020-11", "failed")}
    assert len(green_ids(db)) == expected_month(GREEN_2020_10, "2020-10").rows_loaded
    assert not (
        tmp_path / "green" / "green_tripdata_2020-11.csv.gz"
    ).exists()  # a corrupt download is not kept

    # the summary is a table on stdout, the status grid shows what is loaded
    assert "loaded" in done.stdout and "failed" in done.stdout
    status = runner("status", "--json", env=warehouse_env, cache=tmp_path)
    assert status.returncode == 0, status.stderr
    rows = {(r["taxi"], r["file_month"]): r for r in map(json.loads, status.stdout.splitlines())}
    assert rows[("green", "2020-10")]["rows_loaded"] == expected_month(GREEN_2020_10, "2020-10").rows_loaded
    assert rows[("green", "2020-11")]["state"] == "failed"
    grid = runner("status", env=warehouse_env, cache=tmp_path)
    assert "95,120" in grid.stdout and "2021-07" in grid.stdout

    # the report: its path on stdout (tests/test_report.py checks its figures and renders it)
    page = tmp_path / "report.html"
    made = runner("report", "--out", str(page), env=warehouse_env, cache=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(page) and "green_tripdata_2020-11.csv.gz" in page.read_text()
    outside = runner("report", "--month", "2018-12", env=warehouse_env, cache=tmp_path)
    assert outside.returncode == 2 and "outside the project's range" in outside.stderr


def test_overlapping_loads_leave_no_duplicates(db, warehouse_env, tmp_path):
    """Two runners on the same month at once, and a third on another month, all at the same time."""
    source = tmp_path / "source"
    (source / "green").mkdir(parents=True)
    (source / "green" / GREEN_2020_10.name).write_bytes(GREEN_2020_10.read_bytes())
    header, rows = read_rows(GREEN_2020_10)
    write_month(source, "green", "2020-11", header, rows)  # October's rows, moved to November
    # the first load creates the tables, so the race is on the month, not on the catalog
    first = runner(
        "load",
        "--taxi",
        "green",
        "--month",
        "2020-10",
        "--source",
        str(source),
        env=warehouse_env,
        cache=tmp_path,
    )
    assert first.returncode == 0, first.stderr

    commands = [
        ["load", "--taxi", "green", "--month", "2020-10", "--source", str(source), "--force"],
        ["load", "--taxi", "green", "--month", "2020-10", "--source", str(source), "--force"],
        ["load", "--taxi", "green", "--month", "2020-11", "--source", str(source)],
    ]
    env = {**os.environ, **warehouse_env, "RUNNER_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [*RUNNER, *c],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], "\n".join(err for _, err in results)

    ids = green_ids(db)
    expected = expected_month(GREEN_2020_10, "2020-10").rows_loaded
    assert len(ids) == 2 * expected  # two file months, each whole, each once
    with db.cursor() as cursor:
        cursor.execute(
            "select file_month, count(*), count(distinct unique_row_id) from nyc_taxi.green_tripdata"
            " group by 1 order by 1"
        )
        assert [(n, d) for _, n, d in cursor.fetchall()] == [(expected, expected)] * 2
    assert not [row for row in ledger(db) if row["state"] != "succeeded"]


def test_bad_usage_exits_2_with_a_message(warehouse_env, tmp_path):
    for args, says in [
        (["load", "--taxi", "purple", "--month", "2020-10"], "taxi 'purple' is not known"),
        (["load", "--taxi", "green", "--month", "2020-13"], "not a month"),
        (
            ["backfill", "--taxi", "green", "--start", "2020-05", "--end", "2020-01"],
            "ends (2020-01) before it starts",
        ),
        (
            ["backfill", "--taxi", "green", "--start", "2018-01", "--end", "2019-02"],
            "outside the project's range",
        ),
        (["load", "--month", "2020-10"], "Missing option"),
    ]:
        done = runner(*args, env=warehouse_env, cache=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)


def test_ctrl_c_stops_cleanly(http, db, warehouse_env, tmp_path):
    http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()
    http.slow.add("green/green_tripdata_2020-10.csv.gz")  # about 80 s at this pace: we interrupt it
    env = {**os.environ, **warehouse_env, "RUNNER_CACHE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [*RUNNER, "load", "--taxi", "green", "--month", "2020-10", "--source", http.url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not http.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert green_ids(db) == []
    assert (tmp_path / "green").is_dir()  # the download had begun there (it made the folder for its .part)
    assert not list((tmp_path / "green").glob("*.part"))  # and left no partial file behind
    assert [row for row in ledger(db) if row["state"] == "running"] == []


def test_help_explains_every_command(tmp_path):
    done = subprocess.run([*RUNNER, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0
    # each command is listed on a line of its own with a description after it (the word alone would
    # also be found in the app's own help text)
    listed = {
        line.strip("│ ").split()[0] for line in done.stdout.splitlines() if len(line.strip("│ ").split()) > 1
    }
    for command in (
        "load",
        "backfill",
        "status",
        "report",
        "remove",
        "schedule",
        "db",
        "cache",
        "gcp",
        "kestra",
    ):
        assert command in listed, done.stdout
