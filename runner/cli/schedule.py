"""`runner schedule`: the scheduler of runner/schedule.py, as a daemon or once from cron."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Fire what is due now and exit (for cron or a Kubernetes CronJob).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="The triggers file (default: schedules.yml in the project).")
    ] = None,
    source: SourceOption = None,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
    now: Annotated[
        str | None, typer.Option(hidden=True, help="Pretend the clock says this (ISO datetime); for tests.")
    ] = None,
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
    import signal
    from datetime import datetime, timedelta, timezone

    from runner.pipeline import Settings, make_pipeline
    from runner.schedule import (
        CONFIG_NAME,
        LockHeld,
        PostgresStore,
        ScheduleConfigError,
        Scheduler,
        load_config,
    )
    from runner.source import default_cache_dir
    from runner.warehouse import Warehouse as PostgresWarehouse
    from runner.warehouse import target_schema

    if target is Target.bq:
        fail("runner schedule runs on PostgreSQL only for now (--target pg): BigQuery is not supported yet")
    project = load_project()
    try:
        schedules = load_config(config or project.root / CONFIG_NAME, tuple(project.taxis))
    except ScheduleConfigError as error:
        fail(str(error))
    offset, frozen = timedelta(0), None
    if now is not None:
        try:
            pretend = datetime.fromisoformat(now.strip().replace("Z", "+00:00"))
        except ValueError:
            fail(f"--now {now!r} is not an ISO datetime, like 2020-11-01T09:00:00+00:00")
        if pretend.tzinfo is None:
            pretend = pretend.replace(tzinfo=schedules.timezone)
        # --once: the clock stops there; the daemon: it runs on from there
        offset, frozen = pretend - datetime.now(timezone.utc), pretend if once else None

    def clock() -> datetime:
        return frozen or datetime.now(timezone.utc) + offset

    def log(message: str) -> None:
        typer.echo(f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} schedule: {message}", err=True)

    use_server()
    store = PostgresStore.connect(
        target_schema(), PostgresWarehouse.for_project(project.landing_schema_suffix).connect()
    )
    pipeline = make_pipeline(
        project.root, Settings(source=source, cache_dir=cache_dir or default_cache_dir()), target.value
    )
    flags = RunOptions(source=source, cache_dir=cache_dir, target=target).flags()
    scheduler = Scheduler(
        config=schedules, pipeline=pipeline, store=store, now=clock, log=log, retry_flags=tuple(flags)
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
        names = ", ".join(f"{t.name} ({t.cron})" for t in schedules.triggers)
        log(f"{schedules.path}: {names}, {schedules.timezone.key}, recover_missed {schedules.recover_missed}")
        summary = scheduler.run_due() if once else scheduler.run_forever(lambda: stop_requested)
    except LockHeld as error:
        fail(str(error))
    except KeyboardInterrupt as stop:
        interrupted(stop, "its tick fires again at the next start (recover_missed)")
    finally:
        pipeline.warehouse.close()
        store.close()
    log(
        f"{summary.ticks} tick(s): {len(summary.done)} done, {len(summary.pending)} pending, "
        f"{len(summary.failed)} failed, {len(summary.skipped)} outside the project's range"
    )
    if summary.failed:
        raise typer.Exit(EXIT_MONTH_FAILED)
