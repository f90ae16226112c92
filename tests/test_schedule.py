"""`runner schedule` loads each due month once, keeps unpublished ones pending, and runs alone.

The pure parts (config, due ticks, months), the Scheduler with fakes, and the
command against the real PostgreSQL (state table, pending months, the lock, SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import BUNDLED, ROOT
from reference import read_rows, write_month

from runner.pipeline import MonthOutcome, RunResult
from runner.project import Month, load_project
from runner.schedule import (
    LockHeld,
    PostgresStore,
    ScheduleConfigError,
    Scheduler,
    Trigger,
    TriggerState,
    due_ticks,
    load_config,
    month_for_tick,
    parse_config,
    ticks_between,
)

UTC = timezone.utc
TAXIS = ("fhv", "green", "yellow")
RUNNER = [sys.executable, "-m", "runner"]


def trigger(cron: str = "0 9 1 * *", zone: str = "UTC", month: str = "previous") -> Trigger:
    return Trigger(name="green", taxi="green", cron=cron, month=month, timezone=ZoneInfo(zone))


def at(*args: int, zone: str = "UTC") -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


# --- pure functions --------------------------------------------------------------------------------


def test_month_for_tick_previous_or_current():
    assert month_for_tick(at(2020, 11, 1, 9), "previous") == Month(2020, 10)
    assert month_for_tick(at(2020, 11, 1, 9), "current") == Month(2020, 11)
    assert month_for_tick(at(2021, 1, 1, 9), "previous") == Month(2020, 12)
    # the tick's date in its own zone: 08:00 on 1 March in Tokyo is still February in UTC
    tokyo = at(2021, 3, 1, 8, zone="Asia/Tokyo")
    assert tokyo.astimezone(UTC).month == 2
    assert month_for_tick(tokyo, "current") == Month(2021, 3)
    assert month_for_tick(tokyo, "previous") == Month(2021, 2)
    with pytest.raises(ValueError):
        month_for_tick(tokyo, "next")


def test_due_ticks_by_policy_across_missed_ticks():
    monthly = trigger()
    last = at(2020, 7, 1, 9)
    on_time = at(2020, 10, 1, 9, 20)  # three ticks since: Aug, Sep, Oct (the last 20 minutes ago)
    late = at(2020, 10, 3, 12)  # the same three, the newest two days old
    assert due_ticks(monthly, last, on_time, "all") == [
        at(2020, 8, 1, 9),
        at(2020, 9, 1, 9),
        at(2020, 10, 1, 9),
    ]
    assert due_ticks(monthly, last, on_time, "last") == [at(2020, 10, 1, 9)]
    assert due_ticks(monthly, last, on_time, "none") == [at(2020, 10, 1, 9)]
    assert due_ticks(monthly, last, late, "all") == [at(2020, 8, 1, 9), at(2020, 9, 1, 9), at(2020, 10, 1, 9)]
    assert due_ticks(monthly, last, late, "last") == [at(2020, 10, 1, 9)]
    assert due_ticks(monthly, last, late, "none") == []
    assert due_ticks(monthly, last, late, "none", grace=timedelta(days=3)) == [at(2020, 10, 1, 9)]
    # nothing since the last tick handled; a tick exactly now is due, once
    assert due_ticks(monthly, at(2020, 10, 1, 9), late, "all") == []
    assert due_ticks(monthly, at(2020, 9, 1, 9), at(2020, 10, 1, 9), "last") == [at(2020, 10, 1, 9)]
    assert due_ticks(monthly, at(2020, 9, 1, 9), at(2020, 10, 1, 8, 59), "all") == []
    with pytest.raises(ValueError):
        due_ticks(monthly, last, late, "some")


def test_ticks_follow_the_zone_across_dst():
    zone = "America/New_York"
    # spring: 02:30 does not exist on 2021-03-14, the tick comes at 03:00 EDT
    spring = list(
        ticks_between(
            trigger("30 2 * * *", zone), at(2021, 3, 13, 12, zone=zone), at(2021, 3, 15, 12, zone=zone)
        )
    )
    assert [t.isoformat() for t in spring] == ["2021-03-14T03:00:00-04:00", "2021-03-15T02:30:00-04:00"]
    # autumn: 01:30 happens twice on 2021-11-07, the tick fires once
    autumn = list(
        ticks_between(
            trigger("30 1 * * *", zone), at(2021, 11, 6, 12, zone=zone), at(2021, 11, 8, 12, zone=zone)
        )
    )
    assert [t.isoformat() for t in autumn] == ["2021-11-07T01:30:00-04:00", "2021-11-08T01:30:00-05:00"]
    # 09:00 New York is 14:00 UTC in winter and 13:00 UTC in summer
    daily = trigger("0 9 * * *", zone)
    ticks = list(
        ticks_between(daily, datetime(2021, 3, 13, 10, tzinfo=UTC), datetime(2021, 3, 15, tzinfo=UTC))
    )
    assert [t.astimezone(UTC).hour for t in ticks] == [14, 13]


def test_the_repository_config_is_the_reference_schedule():
    config = load_config(ROOT / "schedules.yml", TAXIS)
    assert config.timezone.key == "UTC" and config.recover_missed == "last"
    assert [(t.name, t.taxi, t.cron, t.month) for t in config.triggers] == [
        ("green", "green", "0 9 1 * *", "previous"),
        ("yellow", "yellow", "0 10 1 * *", "previous"),
        ("fhv", "fhv", "0 11 1 * *", "previous"),  # not in the reference: an hour after yellow
    ]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"triggers": [{"taxi": "green", "cron": "0 9 1 *"}]}, "triggers[0].cron: '0 9 1 *' is not a cron"),
        ({"triggers": [{"taxi": "green", "cron": "61 9 1 * *"}]}, "triggers[0].cron"),
        ({"triggers": [{"taxi": "green", "cron": "0 0 9 1 * * 2020"}]}, "triggers[0].cron"),
        (
            {"triggers": [{"taxi": "purple", "cron": "0 9 1 * *"}]},
            "triggers[0].taxi: 'purple' is not a known",
        ),
        ({"timezone": "Mars/Olympus", "triggers": []}, "timezone: 'Mars/Olympus' is not a known time zone"),
        ({"recover_missed": "some", "triggers": []}, "recover_missed: 'some' is not one of all, last, none"),
        ({"triggers": [{"taxi": "green", "cron": "@monthly", "month": "next"}]}, "triggers[0].month: 'next'"),
        ({"triggers": [{"taxi": "green", "cron": "@monthly", "when": 1}]}, "triggers[0].when: unknown key"),
        ({"trigers": []}, "trigers: unknown key"),
        ({"triggers": []}, "triggers: expected a list"),
        ({"grace_minutes": 0, "triggers": []}, "grace_minutes"),
        (
            {"triggers": [{"taxi": "green", "cron": "@monthly"}, {"taxi": "green", "cron": "@daily"}]},
            "triggers[1].name: 'green' names two triggers",
        ),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)
def test_bad_config_names_the_file_and_the_key(data, says):
    with pytest.raises(ScheduleConfigError) as caught:
        parse_config(data, Path("conf/schedules.yml"), TAXIS)
    assert str(caught.value).startswith("conf/schedules.yml: ")
    assert says in str(caught.value)


def test_bad_yaml_and_missing_file(tmp_path):
    (tmp_path / "s.yml").write_text("triggers: [\n")
    with pytest.raises(ScheduleConfigError, match=r"s\.yml: not valid YAML"):
        load_config(tmp_path / "s.yml", TAXIS)
    with pytest.raises(ScheduleConfigError, match=r"nope\.yml: cannot read"):
        load_config(tmp_path / "nope.yml", TAXIS)


# --- the Scheduler, with a fake pipeline and state --------------------------------------------------


@dataclass
class FakeStore:
    states: dict[str, TriggerState] = field(default_factory=dict)

    def read(self, trigger):
        return self.states.get(trigger.name)

    def write(self, trigger, state):
        self.states[trigger.name] = state

    def check(self):
        pass


@dataclass
class FakePipeline:
    published: set[tuple[str, Month]]
    project: object = field(default_factory=load_project)
    runs: list[list[tuple[str, Month]]] = field(default_factory=list)

    def run(self, plan, on_done=None):
        self.runs.append([(spec.name, month) for spec, month in plan])
        result = RunResult()
        for spec, month in plan:
            if (spec.name, month) in self.published:
                result.outcomes.append(MonthOutcome(spec.name, month, "loaded", rows=10))
            else:
                result.outcomes.append(
                    MonthOutcome(spec.name, month, "failed", message="404", unpublished=True)
                )
        return result


def scheduler_at(clock: list[datetime], pipeline: FakePipeline, store: FakeStore, policy: str = "last"):
    config = parse_config(
        {"recover_missed": policy, "triggers": [{"taxi": "green", "cron": "0 9 1 * *"}]}, Path("s.yml"), TAXIS
    )
    logged: list[str] = []
    return Scheduler(config, pipeline, store, now=lambda: clock[0], log=logged.append), logged


def test_scheduler_starts_from_now_keeps_pending_months_and_skips_out_of_range():
    clock = [at(2020, 10, 15)]
    pipeline, store = FakePipeline(published={("green", Month(2020, 11))}), FakeStore()
    scheduler, logged = scheduler_at(clock, pipeline, store)

    assert scheduler.run_due().ticks == 0  # no state: starts from now, no history
    assert store.states["green"].last_tick == at(2020, 10, 15)
    assert "starting from now" in logged[0] and "2020-11-01 09:00 UTC" in logged[0]

    clock[0] = at(2020, 11, 1, 9, 5)
    summary = scheduler.run_due()
    assert pipeline.runs == [[("green", Month(2020, 10))]]
    assert summary.pending == ["green 2020-10"] and not summary.failed
    assert store.states["green"] == TriggerState(at(2020, 11, 1, 9), (Month(2020, 10),))

    clock[0] = at(2020, 11, 20)
    assert scheduler.run_due().ticks == 0  # a pending month waits for the next tick

    clock[0] = at(2020, 12, 1, 9)
    pipeline.published.add(("green", Month(2020, 10)))
    summary = scheduler.run_due()
    assert pipeline.runs[-1] == [("green", Month(2020, 10)), ("green", Month(2020, 11))]
    assert summary.done == ["green 2020-10 loaded", "green 2020-11 loaded"]
    assert store.states["green"] == TriggerState(at(2020, 12, 1, 9), ())

    clock[0] = at(2021, 9, 1, 9)  # the tick's month, 2021-08, is after the project's last month
    runs = len(pipeline.runs)
    summary = scheduler.run_due()
    # no month to load; the run still happens, for the models that are behind the ledger
    assert summary.skipped == ["green 2021-08"] and pipeline.runs[runs:] == [[]]
    assert any("outside the project's range 2019-01 to 2021-07" in line for line in logged)


@pytest.mark.parametrize(("policy", "months"), [("all", [7, 8, 9]), ("last", [9]), ("none", [])])
def test_scheduler_recovers_missed_ticks_by_policy(policy, months):
    clock = [at(2020, 10, 1, 12)]  # the ticks of Aug, Sep and Oct were missed (Oct's by 3 hours)
    pipeline = FakePipeline(published={("green", Month(2020, m)) for m in range(1, 13)})
    store = FakeStore({"green": TriggerState(at(2020, 7, 1, 9))})
    scheduler, logged = scheduler_at(clock, pipeline, store, policy)
    scheduler.run_due()
    assert pipeline.runs == [[("green", Month(2020, m))] for m in months]
    assert store.states["green"].last_tick == at(2020, 10, 1, 9)  # handled, fired or not
    if policy != "all":
        assert any("missed tick(s) not recovered" in line for line in logged)


def test_run_forever_sleeps_in_short_naps_and_stops_when_asked():
    clock = [at(2020, 10, 31, 23)]
    pipeline, store = FakePipeline(published=set()), FakeStore()
    scheduler, _ = scheduler_at(clock, pipeline, store)
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    scheduler.run_forever(lambda: clock[0] >= at(2020, 11, 1, 9, 30), sleep)
    assert max(naps) <= 1.0
    assert pipeline.runs == [[("green", Month(2020, 10))]]  # fired once, at 09:00
    assert store.states["green"].last_tick == at(2020, 11, 1, 9)


# --- the command, against the real PostgreSQL --------------------------------------------------------


def schedule(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNNER, "schedule", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def small_month(folder: Path, taxi: str, month: str, rows: int = 200) -> Path:
    """A subset of a bundled file, published as another month."""
    bundled = next((BUNDLED / taxi).glob("*.csv.gz"))
    header, body = read_rows(bundled)
    return write_month(folder, taxi, month, header, body[:rows])


def ticks_table(db) -> dict[str, tuple[datetime, list[str]]]:
    with db.cursor() as cursor:
        cursor.execute("select trigger_name, last_tick, pending_months from nyc_taxi.scheduler_ticks")
        return {name: (tick, pending) for name, tick, pending in cursor.fetchall()}


def ledger_states(db) -> dict[tuple[str, str], str]:
    with db.cursor() as cursor:
        cursor.execute("select to_regclass('nyc_taxi.load_ledger')")
        if cursor.fetchone()[0] is None:
            return {}
        cursor.execute(
            "select distinct on (taxi, file_month) taxi, to_char(file_month, 'YYYY-MM'), state"
            " from nyc_taxi.load_ledger order by taxi, file_month, started_at desc"
        )
        return {(taxi, month): state for taxi, month, state in cursor.fetchall()}


CONFIG = """
timezone: UTC
recover_missed: last
triggers:
  - {taxi: green, cron: "0 9 1 * *"}
  - {taxi: yellow, cron: "0 10 1 * *"}
"""


def test_once_loads_due_months_keeps_unpublished_ones_pending(db, warehouse_env, tmp_path):
    config, source = tmp_path / "schedules.yml", tmp_path / "source"
    config.write_text(CONFIG)
    small_month(source, "green", "2020-10")
    base = ["--once", "--config", str(config), "--source", str(source)]

    first = schedule(*base, "--now", "2020-10-15T12:00:00Z", env=warehouse_env)
    assert first.returncode == 0, first.stderr
    assert "starting from now" in first.stderr
    assert ticks_table(db) == {
        "green": (at(2020, 10, 15, 12), []),
        "yellow": (at(2020, 10, 15, 12), []),
    }
    assert ledger_states(db) == {}  # no history backfilled

    # green's tick loads 2020-10; yellow's finds no file: pending, not failed (exit 0)
    second = schedule(*base, "--now", "2020-11-01T10:30:00Z", env=warehouse_env)
    assert second.returncode == 0, second.stderr
    assert "green 2020-10 loaded (200 rows)" in second.stderr
    assert "yellow 2020-10 not published yet: pending" in second.stderr
    assert ticks_table(db) == {
        "green": (at(2020, 11, 1, 9), []),
        "yellow": (at(2020, 11, 1, 10), ["2020-10"]),
    }
    assert ledger_states(db)[("green", "2020-10")] == "succeeded"

    # run again before the next tick: nothing is due, nothing retried
    again = schedule(*base, "--now", "2020-11-20T00:00:00Z", env=warehouse_env)
    assert again.returncode == 0, again.stderr
    assert "0 tick(s)" in again.stderr

    # the next tick: yellow's pending month is published now and loads with the tick's own month
    # (missing: pending again); green's month is a corrupt file: failed, exit 1, not pending
    small_month(source, "yellow", "2020-10")
    small_month(source, "yellow", "2020-11").write_bytes(b"not gzip")
    third = schedule(*base, "--now", "2020-12-01T10:00:00Z", env=warehouse_env)
    states = ledger_states(db)
    assert states[("yellow", "2020-10")] == "succeeded"
    assert states[("yellow", "2020-11")] == "failed"
    assert "green 2020-11 not published yet: pending" in third.stderr
    assert "yellow 2020-11 FAILED" in third.stderr
    assert third.returncode == 1, third.stderr
    assert ticks_table(db) == {
        "green": (at(2020, 12, 1, 9), ["2020-11"]),
        "yellow": (at(2020, 12, 1, 10), []),
    }


def test_a_second_scheduler_is_refused(db, pg_server, warehouse_env, tmp_path):
    config = tmp_path / "schedules.yml"
    config.write_text(CONFIG)
    holder = PostgresStore.connect("nyc_taxi", pg_server.connect())
    try:
        holder.lock()
        with pytest.raises(LockHeld):  # the same warehouse, another session
            PostgresStore.connect("nyc_taxi", pg_server.connect()).lock()
        refused = schedule(
            "--once", "--config", str(config), "--now", "2020-11-01T10:30:00Z", env=warehouse_env
        )
        assert refused.returncode == 2, refused.stderr
        assert "another scheduler is running on this warehouse" in refused.stderr
        assert "nyc-taxi-scheduler" in refused.stderr and f"pid {os.getpid()}" in refused.stderr
    finally:
        holder.close()
    # released with its session
    done = schedule("--once", "--config", str(config), "--now", "2020-11-01T10:30:00Z", env=warehouse_env)
    assert done.returncode == 0, done.stderr


def test_bq_target_is_refused(warehouse_env):
    refused = schedule("--once", "--target", "bq", env=warehouse_env, timeout=60)
    assert refused.returncode == 2 and "PostgreSQL only" in refused.stderr


def test_daemon_fires_on_time_and_stops_on_sigterm(db, warehouse_env, tmp_path):
    config, source = tmp_path / "schedules.yml", tmp_path / "source"
    config.write_text("triggers:\n  - {taxi: green, cron: '0 9 1 * *'}\n")
    small_month(source, "green", "2020-10")
    process = subprocess.Popen(
        [
            *RUNNER,
            "schedule",
            "--config",
            str(config),
            "--source",
            str(source),
            "--now",
            "2020-11-01T08:59:57Z",
        ],
        cwd=ROOT,
        env={**os.environ, **warehouse_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if ticks_table_or_none(db).get("green", (None,))[0] == at(2020, 11, 1, 9):
                break
            time.sleep(0.5)
        assert process.poll() is None, process.stderr.read()
        assert ledger_states(db)[("green", "2020-10")] == "succeeded"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "SIGTERM: stopping" in stderr and "Traceback" not in stderr
    assert "green 2020-10 loaded (200 rows)" in stderr


def ticks_table_or_none(db) -> dict[str, tuple[datetime, list[str]]]:
    with db.cursor() as cursor:
        cursor.execute("select to_regclass('nyc_taxi.scheduler_ticks')")
        if cursor.fetchone()[0] is None:
            return {}
    return ticks_table(db)
