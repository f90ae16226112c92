"""Ctrl-C or SIGTERM at any moment of a `runner load` leaves the month whole and says so, exit 130.

At each moment of a real `runner load` against the real server: a ledger that tells the truth, a
message that says what the warehouse holds (and nothing from dbt's insides), models that are rebuilt
by the next run when they fell behind.

The moments inside the load are reached deterministically: the test holds a lock on what that step
needs, waits until the runner waits for it, and sends the signal to the runner's process group (as a
terminal's Ctrl-C does). The moments before the load (Python and dbt starting) are reached by time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from conftest import BUNDLED, ROOT
from reference import expected_month, read_rows, write_month
from runner_process import RUNNER, finish, last_success, ledger, month_ids, query, runner_env

from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
DBT_INSIDES = ("Traceback", "dbt.artifacts", "has no attribute", "Field resource_type", "could not parse")


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The runner in a session of its own: the signal goes to its whole process group, like Ctrl-C."""
    return subprocess.Popen(
        [*RUNNER, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def interrupt_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], signum: int = signal.SIGINT
) -> tuple[int, str]:
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"the run ended before the moment came: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.01)
    os.killpg(process.pid, signum)
    return finish(process, timeout=120)


def waiting_for(holder, connection) -> Callable[[], bool]:
    """Whether a session of the server waits for a lock the `holder` connection holds."""
    holder_pid = holder.get_backend_pid()
    return lambda: query(
        connection,
        "select exists (select from pg_stat_activity where %s = any (pg_blocking_pids(pid))) as waiting",
        (holder_pid,),
    )[0]["waiting"]


def copying(connection) -> bool:
    return query(
        connection,
        "select exists (select from pg_stat_activity where application_name = 'nyc-taxi-runner'"
        " and state = 'active' and query ilike 'copy %%') as copying",
    )[0]["copying"]


def month_totals(connection) -> tuple:
    """Trips and the sum of total_amount for green 2020-10: in the main table and in the mart."""
    main = query(
        connection,
        "select count(*) as trips, sum(total_amount) as total from nyc_taxi.green_tripdata"
        " where file_month = '2020-10-01'",
    )[0]
    mart = query(
        connection,
        "select sum(total_monthly_trips) as trips, sum(revenue_monthly_total_amount) as total"
        " from nyc_taxi_core.dm_monthly_zone_revenue where file_month = '2020-10-01'",
    )[0]
    return (main["trips"], main["total"]), (mart["trips"], mart["total"])


def file_totals(path) -> tuple:
    """Trips and the sum of total_amount a file's month should hold (tests/reference.py's reading)."""
    header, _ = read_rows(path)
    kept = expected_month(path, "2020-10").kept.values()
    total = header.index("total_amount")
    return len(kept), sum(Decimal(row[total] or 0) for row in kept)


def models_current(connection) -> bool:
    [row] = query(
        connection,
        "select models_current from nyc_taxi_core.model_loads"
        " where taxi = 'green' and file_month = '2020-10-01'",
    )
    return row["models_current"]


def assert_clean_interrupt(code: int, stderr: str) -> None:
    assert code == 130, stderr
    assert "interrupted:" in stderr
    assert not [word for word in DBT_INSIDES if word in stderr], stderr
    assert "rolled back and marked failed" not in stderr


def test_a_signal_the_runner_was_started_ignoring_stays_ignored():
    """`nohup runner backfill &`: SIGINT was ignored when the runner started, and stays ignored in
    the steps that catch signals themselves (the COPY, dbt's start); SIGTERM still stops it."""
    from runner import signals

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals.noted() as noted, signals.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # a handler, had one been set, runs by now
        assert noted == []
        with pytest.raises(KeyboardInterrupt), signals.noted() as noted:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert noted == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_dbt_makes_an_error_of_is_still_an_interrupt(dbt, monkeypatch):
    """Ctrl-C while dbt decodes its artifacts: mashumaro's generated decoders catch everything (a bare
    `except:`) and raise their own InvalidFieldValue, which dbt reports as a failed command. In CI a
    load interrupted at that moment failed its month with 'Field "config" of type MacroConfig ...'
    and exit 1. The runner still takes it for the interrupt it was."""
    import dbt.cli.requires as requires

    def decoding_artifacts(*args, **kwargs) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises KeyboardInterrupt here
        except:  # noqa: E722 (what mashumaro's decoders do)
            raise ValueError('Field "config" of type MacroConfig in Macro has invalid value') from None

    dbt.parse()  # as the runner does before any command (the parse holds signals until it is done)
    monkeypatch.setattr(requires, "setup_manifest", decoding_artifacts)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        dbt.invoke(["ls"])
    assert time.monotonic() - started < 5  # the signal reached the decoder, not only the runner


def test_an_interrupt_that_lands_in_a_finalizer_still_stops_the_run_and_prints_nothing(capfd):
    """Seen in a load stopped during its models build: the KeyboardInterrupt was raised inside a
    multiprocessing finalizer the garbage collector ran, where Python prints it with a traceback
    ("Exception ignored in") and drops it. The runner's hook prints nothing and delivers it again."""
    import sys
    import weakref

    from runner import signals

    class Resource:
        pass

    def finalizer_the_signal_landed_in() -> None:
        raise KeyboardInterrupt  # what the SIGINT handler raises, wherever Python is

    previous = sys.unraisablehook
    try:
        signals.interrupts_survive_finalizers()
        resource = Resource()
        weakref.finalize(resource, finalizer_the_signal_landed_in)
        with pytest.raises(KeyboardInterrupt):
            del resource  # the finalizer runs here
            time.sleep(5)  # the interrupt, delivered again, arrives here
    finally:
        sys.unraisablehook = previous
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.fixture
def loaded(pg_server, make_pipeline, project, warehouse_env, tmp_path):
    """Green 2020-10 loaded from the real file (in-process: the runner interrupted is the next one);
    a republished copy with one total_amount changed."""
    env = runner_env(warehouse_env, tmp_path / "cache")
    first = make_pipeline()
    assert not first.run([(project.taxi("green"), Month(2020, 10))]).failed
    first.warehouse.close()  # holds nothing the runners under test could wait for
    header, rows = read_rows(GREEN_2020_10)
    total = header.index("total_amount")
    rows[0][total] = str(Decimal(rows[0][total]) + 100)
    republished = tmp_path / "republished"
    write_month(republished, "green", "2020-10", header, rows)
    connection = pg_server.connect()
    connection.autocommit = True
    holder = pg_server.connect()  # the test's own locks, in a transaction of their own
    yield env, republished, connection, holder
    holder.close()
    connection.close()


def load_republished(env: dict[str, str], republished) -> subprocess.Popen[str]:
    return start("load", "--taxi", "green", "--month", "2020-10", "--source", str(republished), env=env)


def test_interrupt_during_the_merge_leaves_the_old_month_and_says_so(loaded):
    env, republished, connection, holder = loaded
    before = month_totals(connection)
    first = last_success(connection, "2020-10")
    with holder.cursor() as cursor:  # the swap waits for the main table
        cursor.execute("lock table nyc_taxi.green_tripdata in access exclusive mode")

    code, stderr = interrupt_when(load_republished(env, republished), waiting_for(holder, connection))
    holder.rollback()

    assert_clean_interrupt(code, stderr)
    assert "green 2020-10: stopped before its merge committed; the month is as it was" in stderr
    assert month_totals(connection) == before
    assert last_success(connection, "2020-10")["load_id"] == first["load_id"]
    assert [row["state"] for row in ledger(connection, "2020-10")] == ["succeeded", "failed"]
    assert "interrupted" in ledger(connection, "2020-10")[-1]["error"]


def test_interrupt_during_the_copy_leaves_the_old_month(loaded, tmp_path):
    env, _, connection, _ = loaded
    header, rows = read_rows(GREEN_2020_10)
    bigger = tmp_path / "bigger"  # ten times the rows: a COPY that takes long enough to be caught
    write_month(bigger, "green", "2020-10", header, rows * 10)
    before = month_ids(connection, "2020-10")

    code, stderr = interrupt_when(
        start("load", "--taxi", "green", "--month", "2020-10", "--source", str(bigger), env=env),
        lambda: copying(connection),
    )

    assert_clean_interrupt(code, stderr)
    assert "stopped before its merge committed" in stderr
    assert sorted(month_ids(connection, "2020-10")) == sorted(before)
    assert [row["state"] for row in ledger(connection, "2020-10")] == ["succeeded", "failed"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_the_models_build_keeps_the_month_and_the_next_run_rebuilds_the_models(
    loaded, signum
):
    """The issue's reproduction: the month is merged, the models build is cut off."""
    env, republished, connection, holder = loaded
    with holder.cursor() as cursor:  # the mart's rows wait (reading it does not; the merge needs it not)
        cursor.execute("lock table nyc_taxi_core.dm_monthly_zone_revenue in share mode")

    code, stderr = interrupt_when(load_republished(env, republished), waiting_for(holder, connection), signum)
    holder.rollback()

    assert_clean_interrupt(code, stderr)
    assert "merged before the interrupt, and kept: green 2020-10" in stderr
    assert "the models of green 2020-10 are behind the ledger: the next run rebuilds them" in stderr
    new = last_success(connection, "2020-10")
    assert (new["state"], new["action"]) == ("succeeded", "replaced")
    expected = file_totals(republished / "green" / "green_tripdata_2020-10.csv.gz")
    (main, mart) = month_totals(connection)
    assert main == expected
    assert mart != main  # the mart still sums the old file
    assert not models_current(connection)
    status = subprocess.run(
        [*RUNNER, "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert '"models": "behind"' in status.stdout

    # the same file again: the month is skipped, and the models catch up
    code, stderr = finish(load_republished(env, republished))
    assert code == 0, stderr
    assert "the models of green 2020-10 are behind the ledger" in stderr
    assert [row["action"] for row in ledger(connection, "2020-10")] == ["loaded", "replaced"]
    (main, mart) = month_totals(connection)
    assert mart == main == expected
    assert models_current(connection)


@pytest.mark.parametrize("after", [0.3, 1.0, 2.0, 3.0, 4.0, 5.0])
def test_interrupt_at_a_moment_in_time_changes_nothing_or_tells_the_truth(
    pg_server, clean_warehouse, warehouse_env, tmp_path, after
):
    """Seconds into a first load of a small month: Python starting, dbt importing and parsing the
    project, the month loading, the models building (which moment depends on the machine)."""
    env = runner_env(warehouse_env, tmp_path / "cache")
    connection = pg_server.connect()
    connection.autocommit = True
    process = start("load", "--taxi", "yellow", "--month", "2020-07", "--source", str(BUNDLED), env=env)
    time.sleep(after)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    code = process.returncode

    assert not [word for word in DBT_INSIDES if word in stdout], stdout  # dbt prints nothing of its own
    finished = "runner summary" in stdout  # the run was over (the signal came as Python exited: -2)
    if code == 130 and stderr:  # else it had not started yet (silent) or it was over
        assert_clean_interrupt(code, stderr)
    assert code == 130 or (finished and code in (0, -signal.SIGINT)), (code, stderr)
    rows = ledger(connection, "2020-07")
    assert {row["state"] for row in rows} <= {"failed", "succeeded"}, rows
    if any(row["state"] == "succeeded" for row in rows):
        assert "merged before the interrupt" in stderr or finished

    code, stderr = finish(
        start("load", "--taxi", "yellow", "--month", "2020-07", "--source", str(BUNDLED), env=env)
    )
    assert code == 0, stderr
    [row] = query(
        connection,
        "select models_current from nyc_taxi_core.model_loads"
        " where taxi = 'yellow' and file_month = '2020-07-01'",
    )
    assert row["models_current"]
    connection.close()
