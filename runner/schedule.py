"""`runner schedule`: cron triggers that load the month each tick names, with catch-up and a lock.

Pure parts first (the config, which ticks are due, which month a tick loads), then the state the
scheduler keeps in the warehouse (last tick handled and months still pending, per trigger, and a
session advisory lock: one scheduler per warehouse), then the `Scheduler`, which takes its clock and
its pipeline from the caller so tests can drive it, and last `run_on_postgres`, which sets one up on
a PostgreSQL warehouse and runs it. The CLI command is in runner/cli/schedule.py.

A tick loads one file month: by default the month before the tick (a month's file is published after
it ends), or the tick's own month (`month: current`, the reference's `trigger.date`). A file not yet
published (HTTP 404/410, or missing from a local folder) leaves its month pending: it is tried again
at the trigger's next tick. A first run with no state starts from now: history is not backfilled
(`runner backfill` does that).
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from runner.project import Month, Project

if TYPE_CHECKING:
    from runner.pipeline import Settings

CONFIG_NAME = "schedules.yml"
POLICIES = ("all", "last", "none")
MONTH_CHOICES = ("previous", "current")
DEFAULT_POLICY = "last"
DEFAULT_GRACE = timedelta(minutes=60)
MAX_COUNTED = 1000  # missed ticks counted for the log, at most
MAX_SLEEP = 60.0  # seconds: the daemon wakes at least this often (signals, clock changes, the lock)
LOCK_NAMESPACE = "nyc-taxi-scheduler"
_CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class ScheduleConfigError(ValueError):
    """schedules.yml is wrong: the message names the file and the key. Exit code 2."""


# --- the config ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    name: str
    taxi: str
    cron: str
    month: str  # previous | current
    timezone: ZoneInfo


@dataclass(frozen=True)
class ScheduleConfig:
    path: Path
    timezone: ZoneInfo
    recover_missed: str  # all | last | none
    grace: timedelta  # a tick handled later than this after its time counts as missed
    triggers: tuple[Trigger, ...]


def load_config(path: Path, taxis: list[str] | tuple[str, ...]) -> ScheduleConfig:
    """Read and check schedules.yml; ScheduleConfigError names the file and the bad key."""
    import yaml  # a dependency of dbt-core

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ScheduleConfigError(f"{path}: cannot read the schedules file: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ScheduleConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(data, Path(path), taxis)


def parse_config(data: Any, path: Path, taxis: list[str] | tuple[str, ...]) -> ScheduleConfig:
    def bad(key: str, message: str) -> ScheduleConfigError:
        return ScheduleConfigError(f"{path}: {key}: {message}")

    if not isinstance(data, dict):
        raise ScheduleConfigError(f"{path}: expected a mapping with keys timezone, recover_missed, triggers")
    _no_unknown_keys(data, {"timezone", "recover_missed", "grace_minutes", "triggers"}, "", bad)

    zone_name = data.get("timezone", "UTC")
    try:
        if not isinstance(zone_name, str) or not zone_name.strip():
            raise ValueError
        zone = ZoneInfo(zone_name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise bad(
            "timezone", f"{zone_name!r} is not a known time zone (IANA names: UTC, Europe/Paris, ...)"
        ) from None

    policy = data.get("recover_missed", DEFAULT_POLICY)
    if policy not in POLICIES:
        raise bad("recover_missed", f"{policy!r} is not one of {', '.join(POLICIES)}")

    grace_minutes = data.get("grace_minutes", int(DEFAULT_GRACE.total_seconds() // 60))
    if isinstance(grace_minutes, bool) or not isinstance(grace_minutes, int) or grace_minutes < 1:
        raise bad("grace_minutes", f"{grace_minutes!r} is not a whole number of minutes (1 or more)")

    entries = data.get("triggers")
    if not isinstance(entries, list) or not entries:
        raise bad("triggers", "expected a list of triggers, each with taxi and cron")
    triggers: list[Trigger] = []
    for index, entry in enumerate(entries):
        where = f"triggers[{index}]"
        if not isinstance(entry, dict):
            raise bad(where, "expected a mapping with taxi, cron and optionally name and month")
        _no_unknown_keys(entry, {"name", "taxi", "cron", "month"}, f"{where}.", bad)
        taxi = entry.get("taxi")
        if taxi not in taxis:
            raise bad(f"{where}.taxi", f"{taxi!r} is not a known taxi type: use one of {', '.join(taxis)}")
        name = entry.get("name", taxi)
        if not isinstance(name, str) or not name.strip():
            raise bad(f"{where}.name", f"{name!r} is not a name")
        if any(t.name == name for t in triggers):
            raise bad(f"{where}.name", f"{name!r} names two triggers: give each a distinct name")
        cron = entry.get("cron")
        if not _valid_cron(cron):
            raise bad(
                f"{where}.cron",
                f"{cron!r} is not a cron expression: five fields, minute hour day-of-month month "
                "day-of-week, like '0 9 1 * *' (or @monthly, @daily, ...)",
            )
        month = entry.get("month", "previous")
        if month not in MONTH_CHOICES:
            raise bad(f"{where}.month", f"{month!r} is not one of {', '.join(MONTH_CHOICES)}")
        triggers.append(Trigger(name=name, taxi=taxi, cron=cron.strip(), month=month, timezone=zone))
    return ScheduleConfig(
        path=path,
        timezone=zone,
        recover_missed=policy,
        grace=timedelta(minutes=grace_minutes),
        triggers=tuple(triggers),
    )


def _no_unknown_keys(data: dict, known: set[str], prefix: str, bad: Callable) -> None:
    for key in data:
        if key not in known:
            raise bad(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _valid_cron(cron: Any) -> bool:
    if not isinstance(cron, str):
        return False
    text = cron.strip()
    if text.startswith("@"):
        return text.lower() in _CRON_ALIASES
    # croniter also takes a seconds and a year field; a schedule file takes standard cron only
    return len(text.split()) == 5 and croniter.is_valid(text)


# --- ticks and months ----------------------------------------------------------------------------


def ticks_between(trigger: Trigger, after: datetime, until: datetime) -> Iterator[datetime]:
    """The trigger's fire times t with after < t <= until, in its time zone, oldest first.

    croniter works on the zone's wall clock: a time skipped in spring fires at the first time after
    it (02:30 -> 03:00), and a wall time that happens twice in autumn fires once (the first).
    """
    iterator = croniter(trigger.cron, after.astimezone(trigger.timezone))
    previous: datetime | None = None
    while True:
        tick = iterator.get_next(datetime)
        if tick > until:
            return
        if previous is not None and tick.replace(tzinfo=None) == previous.replace(tzinfo=None):
            continue  # the repeated hour of autumn: once is enough
        previous = tick
        yield tick


def latest_tick(trigger: Trigger, now: datetime) -> datetime | None:
    """The trigger's newest fire time at or before now."""
    local = now.astimezone(trigger.timezone)
    tick = croniter(trigger.cron, local + timedelta(seconds=1)).get_prev(datetime)
    if tick > now:
        tick = croniter(trigger.cron, tick).get_prev(datetime)
    return tick


def due_ticks(
    trigger: Trigger, last_tick: datetime, now: datetime, policy: str, grace: timedelta = DEFAULT_GRACE
) -> list[datetime]:
    """The ticks to fire now, oldest first, given the last tick handled.

    Ticks after last_tick and at or before now are due. A tick older than `grace` was missed (the
    scheduler was down, or the machine asleep); `policy` says what becomes of missed ticks:
    `all` fires every one, `last` fires only the newest due tick, `none` fires only a tick on time.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "all":
        return list(ticks_between(trigger, last_tick, now))
    newest = latest_tick(trigger, now)
    if newest is None or newest <= last_tick:
        return []
    if policy == "none" and now - newest > grace:
        return []
    return [newest]


def month_for_tick(tick: datetime, semantics: str = "previous") -> Month:
    """The file month a tick loads: the month before the tick's date (previous) or its own (current).

    The tick's date is read in its own zone: 00:30 on 1 March in New York is February in UTC.
    """
    if semantics not in MONTH_CHOICES:
        raise ValueError(f"month {semantics!r} is not one of {', '.join(MONTH_CHOICES)}")
    month = Month.of(tick.date())
    return month.previous() if semantics == "previous" else month


def describe_tick(tick: datetime) -> str:
    return tick.strftime("%Y-%m-%d %H:%M %Z")


# --- state in the warehouse ----------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerState:
    last_tick: datetime
    pending: tuple[Month, ...] = ()


class StateStore(Protocol):
    def read(self, trigger: Trigger) -> TriggerState | None: ...
    def write(self, trigger: Trigger, state: TriggerState) -> None: ...
    def check(self) -> None: ...


class LockHeld(Exception):
    """Another scheduler holds the warehouse's scheduler lock; the message says which."""


@dataclass
class PostgresStore:
    """The scheduler's own connection: its session advisory lock and its state table.

    `<schema>.scheduler_ticks`: per trigger, the last tick handled and the months still pending.
    The connection stays open for the scheduler's life: the lock is held as long as it is, and the
    server releases it if the scheduler dies.
    """

    schema: str
    connection: Any

    @classmethod
    def connect(cls, schema: str, connection: Any) -> PostgresStore:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                "select set_config('application_name', %s, false)",
                (f"{LOCK_NAMESPACE} {socket.gethostname()} pid {os.getpid()}"[:63],),
            )
        return cls(schema=schema, connection=connection)

    @property
    def table(self) -> str:
        return f'"{self.schema}".scheduler_ticks'

    def lock(self) -> None:
        """Take the warehouse's scheduler lock, or raise LockHeld naming who has it."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "select pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (LOCK_NAMESPACE, self.schema)
            )
            if cursor.fetchone()[0]:
                return
            cursor.execute(
                """
                select a.pid, a.application_name, a.client_addr, a.backend_start
                from pg_locks as l join pg_stat_activity as a on a.pid = l.pid
                where l.locktype = 'advisory' and l.granted and l.objsubid = 2
                  and l.classid = (hashtext(%s)::bigint & 4294967295)::oid
                  and l.objid = (hashtext(%s)::bigint & 4294967295)::oid
                  and l.database = (select oid from pg_database where datname = current_database())
                """,
                (LOCK_NAMESPACE, self.schema),
            )
            row = cursor.fetchone()
            cursor.execute("select current_database()")
            database = cursor.fetchone()[0]
        where = f"database {database}, schema {self.schema}"
        if row is None:
            holder = "another session (it has just let go: try again)"
        else:
            pid, name, address, since = row
            holder = (
                f"server process {pid} ({name or 'no application name'}"
                f"{f', from {address}' if address else ''}, connected since {since:%Y-%m-%d %H:%M:%S %Z})"
            )
        raise LockHeld(
            f"another scheduler is running on this warehouse ({where}): the lock is held by {holder}. "
            "One scheduler per warehouse: stop it first, or run `runner schedule --once` there"
        )

    def ensure_table(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f'create schema if not exists "{self.schema}"')
            cursor.execute(
                f"""
                create table if not exists {self.table} (
                    trigger_name text primary key,
                    taxi text not null,
                    cron text not null,
                    timezone text not null,
                    last_tick timestamptz not null,
                    pending_months text[] not null default '{{}}',
                    updated_at timestamptz not null default now()
                )
                """
            )

    def read(self, trigger: Trigger) -> TriggerState | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"select last_tick, pending_months from {self.table} where trigger_name = %s",
                (trigger.name,),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return TriggerState(last_tick=row[0], pending=tuple(Month.parse(m) for m in row[1]))

    def write(self, trigger: Trigger, state: TriggerState) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"""
                insert into {self.table} as t
                    (trigger_name, taxi, cron, timezone, last_tick, pending_months, updated_at)
                values (%s, %s, %s, %s, %s, %s, now())
                on conflict (trigger_name) do update set
                    taxi = excluded.taxi, cron = excluded.cron, timezone = excluded.timezone,
                    last_tick = excluded.last_tick, pending_months = excluded.pending_months,
                    updated_at = now()
                """,
                (
                    trigger.name,
                    trigger.taxi,
                    trigger.cron,
                    trigger.timezone.key,
                    state.last_tick,
                    [str(m) for m in state.pending],
                ),
            )

    def check(self) -> None:
        """Raises if the connection (and with it the lock) is gone."""
        with self.connection.cursor() as cursor:
            cursor.execute("select 1")

    def close(self) -> None:
        if not self.connection.closed:
            self.connection.close()


# --- the scheduler -------------------------------------------------------------------------------


@dataclass
class Summary:
    ticks: int = 0
    done: list[str] = field(default_factory=list)  # "green 2020-10 loaded"
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outside the project's range

    def describe(self) -> str:
        return (
            f"{self.ticks} tick(s): {len(self.done)} done, {len(self.pending)} pending, "
            f"{len(self.failed)} failed, {len(self.skipped)} outside the project's range"
        )


class Runs(Protocol):
    """What the scheduler needs of a Pipeline."""

    project: Project

    def run(self, plan: list, on_done: Callable | None = None) -> Any: ...


@dataclass
class Scheduler:
    config: ScheduleConfig
    pipeline: Runs
    store: StateStore
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    log: Callable[[str], None] = print
    loading: bool = False  # True while a tick's months load (the CLI's signal handler reads it)
    retry_flags: tuple[str, ...] = ()  # what the retry command a failure names repeats (--source, ...)

    def run_due(self) -> Summary:
        """Fire every due tick of every trigger, oldest first; record each as handled."""
        summary = Summary()
        now = self.now()
        plan: list[tuple[datetime, Trigger]] = []
        for trigger in self.config.triggers:
            state = self.store.read(trigger)
            if state is None:
                self.store.write(trigger, TriggerState(last_tick=now))
                following = next(ticks_between(trigger, now, now + timedelta(days=400)), None)
                self.log(
                    f"{trigger.name}: no state yet, starting from now (history is not backfilled); "
                    f"first tick {describe_tick(following) if following else 'not within a year'}"
                )
                continue
            due = due_ticks(trigger, state.last_tick, now, self.config.recover_missed, self.config.grace)
            newest = latest_tick(trigger, now)
            missed = [
                t for t in islice(ticks_between(trigger, state.last_tick, now), MAX_COUNTED) if t not in due
            ]
            if missed:
                self.log(
                    f"{trigger.name}: {len(missed)}{'+' if len(missed) == MAX_COUNTED else ''} missed "
                    f"tick(s) not recovered (recover_missed: {self.config.recover_missed}), "
                    f"the last at {describe_tick(missed[-1])}"
                )
            plan.extend((tick, trigger) for tick in due)
            if not due and newest is not None and newest > state.last_tick:
                self.store.write(trigger, replace(state, last_tick=newest))
        for tick, trigger in sorted(plan, key=lambda item: (item[0], item[1].name)):
            self.fire(trigger, tick, summary)
        return summary

    def fire(self, trigger: Trigger, tick: datetime, summary: Summary) -> None:
        """Load the tick's month and the trigger's pending months; then record the tick as handled."""
        project = self.pipeline.project
        state = self.store.read(trigger) or TriggerState(last_tick=tick)
        summary.ticks += 1
        wanted = sorted({*state.pending, month_for_tick(tick, trigger.month)})
        label = f"{describe_tick(tick)} {trigger.name}"
        in_range = []
        for month in wanted:
            if project.first_month <= month <= project.last_month:
                in_range.append(month)
            else:
                summary.skipped.append(f"{trigger.taxi} {month}")
                self.log(
                    f"{label}: {trigger.taxi} {month} is outside the project's range "
                    f"{project.first_month} to {project.last_month} (dbt vars first_month, last_month): "
                    "skipped"
                )
        pending: list[Month] = []
        if in_range:
            self.log(f"{label}: loading {trigger.taxi} {', '.join(map(str, in_range))}")
        spec = project.taxi(trigger.taxi)
        self.loading = True
        try:
            # with no month in range it still rebuilds the models that are behind the ledger
            result = self.pipeline.run([(spec, month) for month in in_range])
        finally:
            self.loading = False
        if result.models_behind and not result.downstream_error:
            self.log(f"{label}: rebuilt the models of {', '.join(result.models_behind)} (behind the ledger)")
        for outcome in result.outcomes:
            what = f"{outcome.taxi} {outcome.month}"
            if outcome.unpublished:
                pending.append(outcome.month)
                summary.pending.append(what)
                self.log(f"{label}: {what} not published yet: pending, tried again at the next tick")
            elif outcome.failed:
                summary.failed.append(what)
                retry = ["runner", "load", "--taxi", outcome.taxi, "--month", str(outcome.month)]
                self.log(
                    f"{label}: {what} FAILED: {outcome.message}"
                    f" (to retry: {shlex.join([*retry, *self.retry_flags])})"
                )
            else:
                rows = f" ({outcome.rows:,} rows)" if outcome.rows is not None else ""
                summary.done.append(f"{what} {outcome.status}")
                self.log(f"{label}: {what} {outcome.status}{rows}")
        if result.downstream_error:
            summary.failed.append("downstream models")
            self.log(f"{label}: building the downstream models FAILED: {result.downstream_error}")
        self.store.write(trigger, TriggerState(last_tick=tick, pending=tuple(pending)))

    def next_tick(self) -> datetime | None:
        now = self.now()
        upcoming = [
            next(ticks_between(t, now, now + timedelta(days=400)), None) for t in self.config.triggers
        ]
        return min((t for t in upcoming if t is not None), default=None)

    def run_forever(
        self, should_stop: Callable[[], bool], sleep: Callable[[float], None] = time.sleep
    ) -> Summary:
        """Fire due ticks, sleep until the next one (waking at least every minute), until told to stop."""
        total = Summary()
        announced = False
        while not should_stop():
            self.store.check()
            done = self.run_due()
            for name in ("done", "pending", "failed", "skipped"):
                getattr(total, name).extend(getattr(done, name))
            total.ticks += done.ticks
            upcoming = self.next_tick()
            if done.ticks or not announced:
                announced = True
                self.log(f"next tick {describe_tick(upcoming) if upcoming else 'none within a year'}")
            remaining = MAX_SLEEP
            if upcoming is not None:
                remaining = min(MAX_SLEEP, max(0.0, (upcoming - self.now()).total_seconds()))
            # short naps: a stop request is seen within a second, whatever the signal interrupted
            while remaining > 0 and not should_stop():
                step = min(1.0, remaining)
                sleep(step)
                remaining -= step
        return total


# --- running it ----------------------------------------------------------------------------------


def parse_now(text: str, zone: ZoneInfo) -> datetime:
    """An ISO datetime (a trailing Z for UTC); one without a zone is in `zone`. ValueError if not one."""
    pretend = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return pretend if pretend.tzinfo is not None else pretend.replace(tzinfo=zone)


def make_clock(pretend: datetime | None = None, frozen: bool = False) -> Callable[[], datetime]:
    """The scheduler's clock: the real one, or one that says `pretend` now (for tests), and then stops
    there (frozen: a run --once) or runs on from there (the daemon)."""
    if pretend is None:
        return lambda: datetime.now(timezone.utc)
    if frozen:
        return lambda: pretend
    offset = pretend - datetime.now(timezone.utc)
    return lambda: datetime.now(timezone.utc) + offset


def run_on_postgres(
    project: Project,
    config: ScheduleConfig,
    settings: Settings,
    *,
    once: bool,
    now: Callable[[], datetime],
    log: Callable[[str], None],
    retry_flags: tuple[str, ...] = (),
) -> Summary:
    """Schedule the loads of the PostgreSQL warehouse the PG* variables name: fire what is due (once)
    or run until SIGTERM or SIGINT, then close the connections.

    The scheduler's own connection takes the lock (LockHeld: another scheduler runs) and keeps the
    state table. A signal between ticks stops the daemon; during a tick's load it raises
    KeyboardInterrupt there (the pipeline rolls the month back and marks it failed) and here.
    """
    import signal

    from runner.pipeline import make_pipeline
    from runner.warehouse import Warehouse

    connection = Warehouse.for_project(project).connect()
    store = PostgresStore.connect(project.schema, connection)
    pipeline = make_pipeline(project.root, settings, "pg")
    scheduler = Scheduler(
        config=config, pipeline=pipeline, store=store, now=now, log=log, retry_flags=retry_flags
    )
    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        if scheduler.loading:
            raise KeyboardInterrupt  # the pipeline rolls the month back and marks it failed
        log(f"{signal.Signals(signum).name}: stopping")

    try:
        store.lock()
        store.ensure_table()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        names = ", ".join(f"{t.name} ({t.cron})" for t in config.triggers)
        log(f"{config.path}: {names}, {config.timezone.key}, recover_missed {config.recover_missed}")
        return scheduler.run_due() if once else scheduler.run_forever(lambda: stop_requested)
    finally:
        pipeline.warehouse.close()
        store.close()
