"""A month the ledger calls loaded survives kill -9 of the embedded server the moment its load commits.

The server runs with wal_level minimal (runner/embedded.py SERVER_SETTINGS): the month's rows skip
the WAL, so only the fsync at commit keeps them, and this test is what shows it does."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from conftest import BUNDLED
from reference import expected_month
from runner_process import assert_month_is, finish, last_success, query, runner_env, start_runner

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"


def server_processes(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer, ...)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


def kill_9(pg_server) -> None:
    """SIGKILL to every process of the server at once: nothing flushed, nothing shut down."""
    postmaster = int((pg_server.data_dir / "postmaster.pid").read_text().split()[0])
    processes = server_processes(postmaster)
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):  # ended on its own
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_committed_month_survives_kill_9_right_after_its_load(
    pg_server, clean_warehouse, warehouse_env, tmp_path
):
    connection = pg_server.connect()
    connection.autocommit = True
    assert query(connection, "show wal_level")[0]["wal_level"] == "minimal"  # what this test is about

    env = runner_env(warehouse_env, tmp_path / "cache")
    load = ["load", "--taxi", "green", "--month", "2020-10", "--source", str(BUNDLED)]
    process = start_runner(*load, env=env)
    try:
        deadline = time.monotonic() + 240
        committed = None
        while committed is None and process.poll() is None and time.monotonic() < deadline:
            committed = last_success(connection, "2020-10")
            if committed is None:
                time.sleep(0.01)
        assert committed is not None, "the load ended or timed out before the ledger said it committed"
        connection.close()
        kill_9(pg_server)  # the month's merge has just committed; the models build is under way
    finally:
        pg_server.start()  # crash recovery; and the server runs for the tests after this one
    finish(process)  # it lost its server: whatever it says, the warehouse must tell the truth

    connection = pg_server.connect()
    connection.autocommit = True
    expected = expected_month(GREEN_2020_10, "2020-10")
    assert_month_is(connection, "2020-10", expected, committed["load_id"])
    # every row the heap holds is in the month's unique index, and the index is sound
    with connection.cursor() as cursor:
        cursor.execute("create extension if not exists amcheck")
    checked = query(
        connection,
        "select bt_index_check(indexrelid, true) is not null as checked from pg_index"
        " where indrelid = 'nyc_taxi.green_tripdata_2020_10'::regclass",
    )
    assert checked == [{"checked": True}]

    # the models the kill cut off are rebuilt by the next run, and agree with the month
    code, stderr = finish(start_runner(*load, env=env))
    assert code == 0, stderr
    trips = query(
        connection, "select count(*) as n from nyc_taxi_core.fact_trips where file_month = '2020-10-01'"
    )
    assert trips == [{"n": len(expected.kept)}]
    connection.close()
