"""`runner schedule`: the scheduler of runner/schedule.py, as a daemon or once from cron."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli.common import (
    EXIT_MONTH_FAILED,
    CacheOption,
    RunOptions,
    SourceOption,
    Target,
    TargetOption,
    fail,
    interrupted,
    load_project,
    use_server,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

OnceOption = Annotated[
    bool, typer.Option("--once", help="Fire what is due now and exit (for cron or a Kubernetes CronJob).")
]
ConfigOption = Annotated[
    Path | None, typer.Option(help="The triggers file (default: schedules.yml in the project).")
]
# a test hook, not for users: hidden from the help
NowOption = Annotated[
    str | None, typer.Option(hidden=True, help="Pretend the clock says this (ISO datetime); for tests.")
]


def schedule(
    once: OnceOption = False,
    config: ConfigOption = None,
    source: SourceOption = None,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
    now: NowOption = None,
) -> None:
    """Load each trigger's month when it fires (schedules.yml): a daemon, or --once from cron.

    A tick loads the month before it (`month: current`: its own month).

    A file not published yet leaves its month pending: tried again at the trigger's next tick.

    Ticks missed while no scheduler ran: `recover_missed` all, last (default) or none.

    State (last tick, pending months) is kept in the warehouse, table scheduler_ticks.

    A first run with no state starts from now: it does not backfill history (`runner backfill` does).

    One scheduler per warehouse: a second one exits with code 2.

    --once exits 0 when done (pending months included), 1 when a month failed.
    """
    from runner.pipeline import Settings
    from runner.schedule import CONFIG_NAME, LockHeld, ScheduleConfigError, load_config, run_on_postgres
    from runner.source import default_cache_dir

    if target is Target.bq:
        fail("runner schedule runs on PostgreSQL only for now (--target pg): BigQuery is not supported yet")
    project = load_project()
    try:
        schedules = load_config(config or project.root / CONFIG_NAME, tuple(project.taxis))
    except ScheduleConfigError as error:
        fail(str(error))
    clock = _clock(now, schedules.timezone, frozen=once)
    use_server()
    settings = Settings(source=source, cache_dir=cache_dir or default_cache_dir())
    flags = tuple(RunOptions(source=source, cache_dir=cache_dir, target=target).flags())
    try:
        summary = run_on_postgres(
            project, schedules, settings, once=once, now=clock, log=_log, retry_flags=flags
        )
    except LockHeld as error:
        fail(str(error))
    except KeyboardInterrupt as stop:
        interrupted(stop, "its tick fires again at the next start (recover_missed)")
    _log(summary.describe())
    if summary.failed:
        raise typer.Exit(EXIT_MONTH_FAILED)


def _clock(now: str | None, zone: ZoneInfo, frozen: bool) -> Callable[[], datetime]:
    """The real clock, or one that starts at --now (for tests): stopped there with --once."""
    from runner.schedule import make_clock, parse_now

    if now is None:
        return make_clock()
    try:
        pretend = parse_now(now, zone)
    except ValueError:
        fail(f"--now {now!r} is not an ISO datetime, like 2020-11-01T09:00:00+00:00")
    return make_clock(pretend, frozen)


def _log(message: str) -> None:
    typer.echo(f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} schedule: {message}", err=True)
