"""The runner as a user runs it (a subprocess), and what the warehouse holds after it: helpers of
the tests that stop, kill or race runners (tests/test_faults.py, tests/test_interrupts.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT
from reference import ExpectedMonth

RUNNER = [sys.executable, "-m", "runner"]


def runner_env(warehouse_env: dict[str, str], cache: Path) -> dict[str, str]:
    return {**os.environ, **warehouse_env, "RUNNER_CACHE_DIR": str(cache)}


def start_runner(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RUNNER, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def query(connection, sql: str, params: tuple = ()) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def has_ledger(connection) -> bool:
    return query(connection, "select to_regclass('nyc_taxi.load_ledger') is not null as found")[0]["found"]


def ledger(connection, month: str | None = None) -> list[dict]:
    if not has_ledger(connection):
        return []
    where = "where file_month = %s" if month else ""
    return query(
        connection,
        f"select * from nyc_taxi.load_ledger {where} order by started_at",
        (f"{month}-01",) if month else (),
    )


def month_ids(connection, month: str) -> list[str]:
    """The month's unique_row_ids, asserting each is there once."""
    if not query(connection, "select to_regclass('nyc_taxi.green_tripdata') is not null as found")[0][
        "found"
    ]:
        return []
    ids = [
        row["unique_row_id"]
        for row in query(
            connection,
            "select unique_row_id from nyc_taxi.green_tripdata where file_month = %s",
            (f"{month}-01",),
        )
    ]
    assert len(ids) == len(set(ids)), f"duplicate unique_row_id in {month}"
    return ids


def month_load_ids(connection, month: str) -> set[str]:
    return {
        row["load_id"]
        for row in query(
            connection,
            "select distinct load_id from nyc_taxi.green_tripdata where file_month = %s",
            (f"{month}-01",),
        )
    }


def last_success(connection, month: str) -> dict | None:
    done = [row for row in ledger(connection, month) if row["state"] == "succeeded"]
    return max(done, key=lambda row: row["finished_at"]) if done else None


def wait_for_quiet(connection, timeout: float = 30) -> None:
    """Until no other session works on the server: a killed runner's backends end when they notice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = query(
            connection,
            "select count(*) as n from pg_stat_activity where backend_type = 'client backend'"
            " and pid <> pg_backend_pid() and (state <> 'idle' or application_name = 'nyc-taxi-runner')",
        )[0]["n"]
        if not busy:
            return
        time.sleep(0.05)
    raise AssertionError("sessions of a killed runner are still working on the server")


def assert_month_is(connection, month: str, expected: ExpectedMonth, load_id: str | None = None) -> None:
    ids = month_ids(connection, month)
    assert set(ids) == set(expected.kept), f"{month} does not hold exactly the rows of its file"
    current = last_success(connection, month)
    assert current is not None and current["rows_loaded"] == len(ids)
    if load_id is not None:
        assert month_load_ids(connection, month) == {load_id}
