"""No fault leaves a month half-loaded or loaded twice, and hostile arguments reach no query.

The faults, against a real PostgreSQL: the runner killed mid-load, the server crashing mid-backfill,
two backfills racing. Corrupt files: tests/test_file_rules.py.

Every check compares the warehouse with tests/reference.py's reading of the CSV files and with the
ledger: a month holds exactly the rows of one whole file, once, and the ledger says which.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time

import pytest
from conftest import BUNDLED, ROOT
from reference import expected_month, read_rows, write_month
from runner_process import (
    RUNNER,
    assert_month_is,
    finish,
    has_ledger,
    last_success,
    ledger,
    month_ids,
    month_load_ids,
    runner_env,
    start_runner,
    wait_for_quiet,
)

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
INTERRUPTED = "interrupted: the loader stopped before finishing"
SEED = 20201005  # the kill delays are drawn from this: a failure replays with the same delays


# --- kill -9 of the runner at random moments --------------------------------------------------------


# 8 kills (two full loads between them) keep the suite's time in bounds; KILL_TRIALS=200 (say) soaks
# the same test for longer
KILL_TRIALS = int(os.environ.get("KILL_TRIALS", "8"))
FULL_LOAD_EVERY = 4  # after this many kills, one load runs to its end: later kills hit a replace


def test_runner_killed_at_random_moments_leaves_whole_months_and_a_true_ledger(
    pg_server, clean_warehouse, warehouse_env, tmp_path
):
    header, rows = read_rows(GREEN_2020_10)
    sources = {"A": tmp_path / "a", "B": tmp_path / "b"}
    paths = {
        "A": write_month(sources["A"], "green", "2020-10", header, rows[:20_000]),
        "B": write_month(sources["B"], "green", "2020-10", header, rows[10_000:30_000]),
    }
    for month, part in (("2020-11", rows[40_000:60_000]), ("2020-12", rows[60_000:80_000])):  # neighbours
        write_month(sources["A"], "green", month, header, part)
    expected = {name: expected_month(path, "2020-10") for name, path in paths.items()}
    by_checksum = {hashlib.sha256(path.read_bytes()).hexdigest(): name for name, path in paths.items()}
    env = runner_env(warehouse_env, tmp_path / "cache")
    connection = pg_server.connect()
    connection.autocommit = True

    def load(version: str, month: str = "2020-10") -> subprocess.Popen[str]:
        return start_runner(
            "load", "--taxi", "green", "--month", month, "--source", str(sources[version]), env=env
        )

    def wait_for_row(month: str, known: set[str], process: subprocess.Popen[str], state: str) -> bool:
        """Until the month has a new ledger row (not in `known`) in `state`; False if the process ended."""
        while process.poll() is None:
            if any(r["state"] == state and r["load_id"] not in known for r in ledger(connection, month)):
                return True
            time.sleep(0.02)
        return False

    # uninterrupted loads of two neighbour months: the first makes the tables and models, the second
    # takes as long as a load of a month takes: in all, and from opening its ledger row to finishing it
    code, stderr = finish(load("A", "2020-11"))
    assert code == 0, stderr
    started = time.monotonic()
    process = load("A", "2020-12")
    assert wait_for_row("2020-12", set(), process, "running")
    opened_at = time.monotonic()
    assert wait_for_row("2020-12", set(), process, "succeeded")
    merge_duration = time.monotonic() - opened_at
    code, stderr = finish(process)
    duration = time.monotonic() - started
    assert code == 0, stderr
    neighbour = last_success(connection, "2020-11")

    rng = random.Random(SEED)
    loaded: str | None = None  # the version the month holds, per the ledger; none yet
    kills, full_loads = 0, set()
    killed_mid_load: set[str] = set()  # loads killed after opening their ledger row
    hit_replace = 0
    while kills < KILL_TRIALS:
        version = "B" if loaded == "A" else "A"  # always another file than the month holds
        process = load(version)
        if kills and kills % FULL_LOAD_EVERY == 0 and kills not in full_loads:
            full_loads.add(kills)
            code, stderr = finish(process)
            assert code == 0, stderr
        else:
            # even trials: anywhere in the whole run of the process; odd trials: anywhere between
            # opening the ledger row and finishing it (header check, COPY, merge)
            delay = rng.uniform(0, duration if kills % 2 == 0 else merge_duration)  # drawn every trial
            known = {row["load_id"] for row in ledger(connection, "2020-10")}
            if kills % 2 == 0 or wait_for_row("2020-10", known, process, "running"):
                try:
                    process.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            kills += 1
        wait_for_quiet(connection)

        running = {row["load_id"] for row in ledger(connection, "2020-10") if row["state"] == "running"}
        if process.returncode == -signal.SIGKILL and running - killed_mid_load:
            hit_replace += loaded is not None
            killed_mid_load |= running
        current = last_success(connection, "2020-10")
        ids = month_ids(connection, "2020-10")
        if current is None:
            assert ids == [], "rows of a load that never succeeded"
            continue
        now = by_checksum[current["checksum"]]
        assert now in (loaded, version), "the month holds a file no load of this trial or before finished"
        assert set(ids) == set(expected[now].kept), f"trial {kills}: not exactly the rows of file {now}"
        assert current["rows_loaded"] == len(ids)
        assert month_load_ids(connection, "2020-10") == {current["load_id"]}
        loaded = now

    # one clean run: it finds the month as the trials left it and loads the other file
    version = "B" if loaded == "A" else "A"
    code, stderr = finish(load(version))
    assert code == 0, stderr
    assert_month_is(connection, "2020-10", expected[version])
    assert_month_is(
        connection,
        "2020-11",
        expected_month(sources["A"] / "green" / "green_tripdata_2020-11.csv.gz", "2020-11"),
        neighbour["load_id"],
    )
    attempts = ledger(connection)
    assert [row["load_id"] for row in attempts if row["state"] == "running"] == []
    interrupted = {row["load_id"] for row in attempts if row["error"] == INTERRUPTED}
    assert interrupted == killed_mid_load  # each load killed after it opened its ledger row, ended once
    # the kills did land mid-load, some in the replace of a loaded month
    assert len(killed_mid_load) >= 3 and hit_replace >= 1, (killed_mid_load, hit_replace)
    connection.close()


# --- the database crashes mid-backfill ----------------------------------------------------------------


def crash_and_restart(pg_server) -> None:
    """An immediate shutdown (sessions cut, no checkpoint: a crash to clients), then a start (recovery)."""
    stopped = pg_server._run(
        [pg_server._bin("pg_ctl"), "stop", "-D", str(pg_server.data_dir), "-m", "immediate", "-w"]
    )
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(0.5)  # the runner sees the server gone, not just a blip
    pg_server.start()


def test_database_crash_mid_backfill_loses_nothing_committed(
    pg_server, clean_warehouse, warehouse_env, tmp_path
):
    header, rows = read_rows(GREEN_2020_10)
    months = [f"2020-{m:02d}" for m in range(4, 10)]
    paths = {
        month: write_month(tmp_path / "src", "green", month, header, rows[i * 8000 : (i + 1) * 8000])
        for i, month in enumerate(months)
    }
    env = runner_env(warehouse_env, tmp_path / "cache")
    backfill = [
        "backfill",
        "--taxi",
        "green",
        "--start",
        months[0],
        "--end",
        months[-1],
        "--source",
        str(tmp_path / "src"),
    ]
    connection = pg_server.connect()
    connection.autocommit = True
    process = start_runner(*backfill, env=env)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            done = {m: last_success(connection, m) for m in months}
            if sum(1 for load in done.values() if load) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the backfill ended before the crash"
        committed = {m: load["load_id"] for m, load in done.items() if load}
        connection.close()
        crash_and_restart(pg_server)
    finally:
        pg_server.start()  # whatever happened: the server runs for the tests after this one
    code, stderr = finish(process)
    assert "Traceback" not in stderr
    if code != 0:  # a clear message, not a crash
        assert code in (1, 2), stderr
        assert "connection to the warehouse was lost" in stderr or "failed" in stderr, stderr

    again = start_runner(*backfill, env=env)
    code, stderr = finish(again)
    assert code == 0, stderr
    connection = pg_server.connect()
    connection.autocommit = True
    for month in months:
        assert_month_is(connection, month, expected_month(paths[month], month), committed.get(month))
    assert [row["load_id"] for row in ledger(connection) if row["state"] == "running"] == []
    connection.close()


# --- two backfills over overlapping ranges at once --------------------------------------------------


def test_overlapping_backfills_load_each_month_once(db, warehouse_env, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    months = [f"2020-{m:02d}" for m in range(1, 7)]
    paths = {
        month: write_month(tmp_path / "src", "green", month, header, rows[i * 3000 : (i + 1) * 3000])
        for i, month in enumerate(months)
    }
    env = runner_env(warehouse_env, tmp_path / "cache")
    ranges = [(months[0], months[3]), (months[2], months[5])]
    processes = [
        start_runner(
            "backfill",
            "--taxi",
            "green",
            "--start",
            start,
            "--end",
            end,
            "--source",
            str(tmp_path / "src"),
            env=env,
        )
        for start, end in ranges
    ]
    results = [finish(process) for process in processes]
    assert [code for code, _ in results] == [0, 0], "\n".join(err for _, err in results)

    attempts = ledger(db)
    assert [row for row in attempts if row["state"] != "succeeded"] == []
    for month, path in paths.items():
        mine = [row for row in attempts if row["file_month"].isoformat()[:7] == month]
        loaded = [row for row in mine if row["action"] == "loaded"]
        assert len(loaded) == 1, mine  # one load of the file; the other run skipped it or left it unchanged
        assert {row["action"] for row in mine} <= {"loaded", "unchanged"}
        assert_month_is(db, month, expected_month(path, month), loaded[0]["load_id"])


# --- hostile arguments: refused before any query ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--taxi", "green'; drop table x; --", "--month", "2020-10"], "is not known"),
        (["--taxi", "green", "--month", "2020-10'; --"], "is not a month"),
        (["--taxi", "green", "--month", "2020-13"], "is not a month"),
        (["--taxi", "../green", "--month", "2020-10"], "is not known"),
    ],
)
def test_hostile_cli_arguments_are_refused_before_any_query(db, warehouse_env, tmp_path, args, says):
    before = ledger(db)
    done = subprocess.run(
        [*RUNNER, "load", *args, "--source", str(BUNDLED)],
        cwd=ROOT,
        env=runner_env(warehouse_env, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    bad = args[1] if "known" in says else args[3]
    assert says in done.stderr and bad in done.stderr, done.stderr  # names the bad value
    assert ledger(db) == before == []
    assert not has_ledger(db)  # not even the tables: nothing reached the server


def test_hostile_dbt_vars_are_refused_before_any_query(dbt, db):
    with pytest.raises(DbtError) as failure:
        dbt.build(variables={"taxi": "green'--", "month": "2020-10"})
    assert "taxi=green'-- is not a known taxi type" in str(failure.value)
    assert ledger(db) == []


def test_a_source_folder_with_dot_dot_is_the_folder_it_names(make_pipeline, db, project, tmp_path):
    """`..` in --source is accepted: a local folder the user chose, resolved once. The runner reads only
    <folder>/<taxi>/<taxi>_tripdata_<YYYY>-<MM>.csv.gz with a validated taxi and month, so `..` there
    cannot reach any other kind of file; the ledger records the resolved path."""
    header, rows = read_rows(GREEN_2020_10)
    path = write_month(tmp_path / "files", "green", "2020-10", header, rows[:500])
    (tmp_path / "elsewhere").mkdir()

    outcome = make_pipeline(source=tmp_path / "elsewhere" / ".." / "files").load_month(
        project.taxi("green"), Month(2020, 10)
    )

    assert outcome.status == "loaded", outcome.message
    assert_month_is(db, "2020-10", expected_month(path, "2020-10"), outcome.load_id)
    assert last_success(db, "2020-10")["source_url"] == path.resolve().as_uri()
