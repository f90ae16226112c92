"""`runner`: load NYC taxi months into Postgres or BigQuery through the nyc_taxi dbt project.

Thin commands: they parse options, pick the server, report progress and results.
The work is in runner/pipeline.py. Heavy imports (dbt, psycopg2, rich) happen inside
the commands, so `runner --help` answers at once.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from runner.kestra import NAMESPACE

if TYPE_CHECKING:
    from runner.pipeline import MonthOutcome, Warehouse
    from runner.project import Month, Project, TaxiSpec

EXIT_OK, EXIT_MONTH_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    help="Load NYC taxi trip files (green, yellow; 2019-01 to 2021-07) into Postgres or BigQuery with dbt.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The embedded PostgreSQL the runner uses when PGHOST is not set.", no_args_is_help=True
)
cache_app = typer.Typer(help="The download cache.", no_args_is_help=True)
gcp_app = typer.Typer(
    help="The BigQuery target's bucket and datasets (settings: GCP_PROJECT, GCS_BUCKET, BQ_DATASET, "
    "GCP_LOCATION, GOOGLE_APPLICATION_CREDENTIALS).",
    no_args_is_help=True,
)
kestra_app = typer.Typer(
    help="Kestra flow files: offline checks against the task catalogue.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(cache_app, name="cache")
app.add_typer(gcp_app, name="gcp")
app.add_typer(kestra_app, name="kestra")


class Target(str, Enum):
    pg = "pg"
    bq = "bq"


TargetOption = Annotated[
    Target,
    typer.Option(
        "--target",
        envvar="DBT_TARGET",
        help="Warehouse: pg (PostgreSQL: PGHOST or the embedded server) "
        "or bq (BigQuery: see `runner gcp --help`).",
    ),
]

TaxiOption = Annotated[
    list[str], typer.Option("--taxi", "-t", help="Taxi type: green or yellow (repeat for both).")
]
SourceOption = Annotated[
    str | None,
    typer.Option(
        help="Where files come from: an http(s) URL prefix or a local folder, laid out as "
        "<prefix>/<taxi>/<taxi>_tripdata_<YYYY>-<MM>.csv.gz. Default: the public release files."
    ),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Reload months already loaded from the same file.")
]
CacheOption = Annotated[
    Path | None, typer.Option(help="Download cache folder (default: $RUNNER_CACHE_DIR or ~/.cache/nyc-taxi).")
]
AllowOtherMonthOption = Annotated[
    bool,
    typer.Option(
        "--allow-other-month",
        help="Load a file even when most of its pickups fall outside its month (by default such a file "
        "is refused as another month's file under this month's name).",
    ),
]


@dataclass(frozen=True)
class RunOptions:
    """What a load or backfill reads and writes: the command that resumes a run repeats all of it."""

    source: str | None = None
    cache_dir: Path | None = None
    target: Target = Target.pg
    force: bool = False
    allow_other_month: bool = False
    jobs: int = 1

    def flags(self) -> list[str]:
        flags = ["--source", self.source] if self.source else []
        flags += ["--cache-dir", str(self.cache_dir)] if self.cache_dir else []
        flags += ["--target", self.target.value] if self.target is not Target.pg else []
        flags += ["--force"] if self.force else []
        flags += ["--allow-other-month"] if self.allow_other_month else []
        return flags + (["--jobs", str(self.jobs)] if self.jobs > 1 else [])


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def interrupted(error: KeyboardInterrupt, after: str) -> NoReturn:
    """Ctrl-C or SIGTERM: say what the warehouse holds (the pipeline read it from the ledger), exit 130."""
    for line in getattr(error, "lines", None) or ["nothing was changed"]:
        typer.secho(f"interrupted: {line}", err=True, fg=typer.colors.YELLOW)
    typer.secho(f"interrupted: {after}", err=True, fg=typer.colors.YELLOW)
    raise typer.Exit(EXIT_INTERRUPTED) from None


def info(message: str) -> None:
    typer.secho(message, err=True, dim=True)


def use_server() -> None:
    """PGHOST set: that server. Otherwise the embedded one, started if needed."""
    if os.environ.get("PGHOST"):
        info(f"using PostgreSQL at {os.environ['PGHOST']}:{os.environ.get('PGPORT', '5432')} (from PGHOST)")
        return
    from runner.embedded import EmbeddedError, EmbeddedPostgres

    server = EmbeddedPostgres()
    try:
        started = server.start()
    except EmbeddedError as error:
        fail(str(error))
    os.environ.update(server.env())
    info(f"{'started' if started else 'using'} the embedded PostgreSQL at {server.url()}")


def _project() -> Project:
    from runner.project import load_project

    return load_project()


def _warehouse(project: Project, target: Target, need_bucket: bool = True) -> Warehouse:
    """The runner's side of the target warehouse, after checking its settings."""
    if target is Target.bq:
        try:
            import google.cloud.bigquery  # noqa: F401 - an extra, not installed by default
        except ImportError:
            fail(
                "the BigQuery target needs the bigquery extra, which is not installed: "
                "pip install 'nyc-taxi-pipeline[bigquery]' (or `scripts/bootstrap dev`)"
            )
        from runner.bigquery import BigQueryWarehouse, ConfigError, GcpConfig

        try:
            config = GcpConfig.from_env(need_bucket=need_bucket)
        except ConfigError as error:
            fail(str(error))
        info(f"using {config.describe()}")
        return BigQueryWarehouse.for_project(project.landing_schema_suffix, config)
    from runner.warehouse import Warehouse as PostgresWarehouse

    use_server()
    return PostgresWarehouse.for_project(project.landing_schema_suffix)


@dataclass(frozen=True)
class Output:
    """How a run reports: progress bars and a table (default), JSON lines, or almost nothing."""

    as_json: bool = False
    quiet: bool = False
    verbose: bool = False
    log_file: Path | None = None

    def log(self, record: dict[str, Any]) -> None:
        if self.log_file is not None:
            from datetime import datetime, timezone

            stamped = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
            with self.log_file.open("a") as log:
                log.write(json.dumps(stamped, default=str) + "\n")

    def emit(self, record: dict[str, Any]) -> None:
        self.log(record)
        if self.as_json:
            sys.stdout.write(json.dumps(record, default=str) + "\n")
            sys.stdout.flush()


def _outcome_record(outcome: MonthOutcome) -> dict[str, Any]:
    return {
        "taxi": outcome.taxi,
        "month": str(outcome.month),
        "status": outcome.status,
        "rows": outcome.rows,
        "seconds": round(outcome.seconds, 2),
        "message": outcome.message,
        "load_id": outcome.load_id,
    }


def _resume_command(failed: list[MonthOutcome], options: RunOptions) -> str:
    import shlex

    taxis = [flag for taxi in sorted({o.taxi for o in failed}) for flag in ("--taxi", taxi)]
    first, last = min(o.month for o in failed), max(o.month for o in failed)
    months = ["--start", str(first), "--end", str(last)]
    return shlex.join(["runner", "backfill", *taxis, *months, *options.flags()])


def _check_source(source: str | None) -> None:
    """A local source must be a folder that exists and holds something: usage errors, exit 2."""
    from runner.project import UsageError
    from runner.source import is_local, local_folder

    try:
        if not is_local(source):
            return
        folder = local_folder(source)
    except UsageError as error:
        fail(str(error))
    if not folder.exists():
        fail(f"--source {source}: no such folder")
    if not folder.is_dir():
        fail(f"--source {source}: not a folder (it holds <taxi>/<taxi>_tripdata_<YYYY>-<MM>.csv.gz files)")
    if not any(folder.iterdir()):
        fail(f"--source {source}: the folder is empty (it should hold <taxi>/ folders of month files)")


def _run(
    months: list[tuple[TaxiSpec, Month]],
    options: RunOptions,
    dry_run: bool = False,
    output: Output | None = None,
) -> None:
    from runner.pipeline import Settings, make_pipeline
    from runner.progress import RichReporter, print_plan, print_summary
    from runner.source import default_cache_dir

    _check_source(options.source)
    output = output or Output()
    pipeline = None
    try:
        project = _project()
        settings = Settings(
            source=options.source,
            cache_dir=options.cache_dir or default_cache_dir(),
            force=options.force,
            allow_other_month=options.allow_other_month,
            jobs=options.jobs,
        )
        warehouse = _warehouse(project, options.target)
        pipeline = make_pipeline(project.root, settings, options.target.value, warehouse=warehouse)
        plan = pipeline.plan(months)
        for decided in plan:
            output.log({"plan": decided.as_dict()})
        if dry_run:
            if output.as_json:
                for decided in plan:
                    sys.stdout.write(json.dumps(decided.as_dict()) + "\n")
            else:
                print_plan(plan)
            return
        if output.verbose and not output.as_json:
            print_plan(plan)
        reporter = RichReporter(total_months=len(months), quiet=output.quiet)
        pipeline.reporter = reporter

        def done(outcome: MonthOutcome) -> None:
            reporter.month_done(outcome)
            output.emit(_outcome_record(outcome))

        with reporter:
            result = pipeline.run(months, on_done=done, plan=plan)
    except KeyboardInterrupt as stop:
        interrupted(stop, "run the same command again to finish")
    finally:
        if pipeline is not None:
            pipeline.warehouse.close()

    failed = [o for o in result.outcomes if o.failed]
    resume = _resume_command(failed, options) if failed else None
    output.emit(
        {
            "summary": dict(Counter(o.status for o in result.outcomes)),
            "months_seconds": round(result.months_seconds, 2),
            "models_seconds": round(result.models_seconds, 2),
            "downstream_error": result.downstream_error,
            "resume": resume,
        }
    )
    if not output.as_json and not output.quiet:
        print_summary(result)
    elif result.downstream_error:
        typer.secho(f"downstream models failed: {result.downstream_error}", err=True, fg=typer.colors.RED)
    if result.failed:
        if resume:
            typer.secho(
                f"{len(failed)} month(s) failed; fix the cause and run again "
                f"(loaded months are skipped): {resume}",
                err=True,
                fg=typer.colors.RED,
            )
        raise typer.Exit(EXIT_MONTH_FAILED)


def _taxis(project: Project, names: list[str]) -> list[TaxiSpec]:
    return [project.taxi(name) for name in dict.fromkeys(names)]


@app.command()
def load(
    taxi: TaxiOption,
    month: Annotated[str, typer.Option("--month", "-m", help="File month, YYYY-MM.")],
    source: SourceOption = None,
    force: ForceOption = False,
    allow_other_month: AllowOtherMonthOption = False,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
) -> None:
    """Load one file month, end to end: download, land, merge, record."""
    from runner.project import UsageError

    try:
        project = _project()
        plan = [(spec, project.month(month)) for spec in _taxis(project, taxi)]
    except UsageError as error:
        fail(str(error))
    _run(plan, RunOptions(source, cache_dir, target, force, allow_other_month))


@app.command()
def backfill(
    taxi: TaxiOption,
    start: Annotated[str, typer.Option(help="First file month, YYYY-MM.")],
    end: Annotated[str, typer.Option(help="Last file month, YYYY-MM (included).")],
    source: SourceOption = None,
    force: ForceOption = False,
    allow_other_month: AllowOtherMonthOption = False,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=8, help="Months loaded at once (worker processes).")
    ] = 1,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (each month: load, retry, reload, check or skip, and why) and load nothing.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines on stdout: one per month, then a summary.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or table: failures only.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print the plan before loading.")] = False,
    log_file: Annotated[
        Path | None,
        typer.Option(help="Append the plan and every month's outcome to this file, as JSON lines."),
    ] = None,
) -> None:
    """Load a range of file months, oldest first; months already loaded from the same file are skipped.

    The plan comes from the ledger first, without downloading: months loaded from an identical file
    are skipped, failed or interrupted ones are tried again. Exit 1 when a month failed, with the
    command that resumes.
    """
    from runner.project import UsageError, month_range

    try:
        project = _project()
        months = month_range(project.month(start), project.month(end))
        plan = [(spec, month) for spec in _taxis(project, taxi) for month in months]
    except UsageError as error:
        fail(str(error))
    output = Output(as_json=as_json, quiet=quiet, verbose=verbose, log_file=log_file)
    options = RunOptions(source, cache_dir, target, force, allow_other_month, jobs)
    _run(plan, options, dry_run=dry_run, output=output)


@app.command()
def remove(
    taxi: Annotated[str, typer.Option("--taxi", "-t", help="Taxi type: green or yellow.")],
    month: Annotated[str, typer.Option("--month", "-m", help="File month, YYYY-MM.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    target: TargetOption = Target.pg,
) -> None:
    """Remove a file month: its rows leave the main table and the models, in one transaction, and the
    ledger records it. A month with failed loads only gets the same record, which clears them."""
    from runner.dbt import DbtError
    from runner.pipeline import Settings, WarehouseError, make_pipeline
    from runner.project import UsageError
    from runner.source import default_cache_dir

    try:
        project = _project()
        spec, file_month = project.taxi(taxi), project.month(month)
    except UsageError as error:
        fail(str(error))
    if not yes:
        typer.confirm(f"Remove {spec.name} {file_month} from the warehouse and the models?", abort=True)
    warehouse = _warehouse(project, target, need_bucket=False)
    pipeline = make_pipeline(project.root, Settings(None, default_cache_dir()), target.value, warehouse)
    try:
        removed = pipeline.remove_month(spec, file_month, reason)
    except (DbtError, WarehouseError) as error:
        fail(str(error), EXIT_MONTH_FAILED)
    except KeyboardInterrupt as stop:
        interrupted(stop, "the ledger says whether the month was removed: `runner status`")
    finally:
        warehouse.close()
    held = f"{removed['rows_loaded']:,} rows of load {removed['load_id']}" if removed else "no rows"
    typer.echo(f"removed {spec.name} {file_month} ({held}); the ledger records it")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledger's view as JSON lines.")] = False,
    target: TargetOption = Target.pg,
) -> None:
    """What is loaded: a grid of taxi type x file month with rows and state, and whether the models
    reflect each month's rows."""
    from runner.pipeline import Settings, make_pipeline
    from runner.progress import print_status
    from runner.source import default_cache_dir

    project = _project()
    warehouse = _warehouse(project, target, need_bucket=False)
    pipeline = make_pipeline(project.root, Settings(None, default_cache_dir()), target.value, warehouse)
    try:
        states = pipeline.month_status()
    finally:
        warehouse.close()
    print_status(project, states, as_json=as_json)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (initialising it on first use)."""
    from runner.embedded import EmbeddedError, EmbeddedPostgres

    server = EmbeddedPostgres()
    try:
        started = server.start()
    except EmbeddedError as error:
        fail(str(error))
    typer.echo(f"{'started' if started else 'already running'}: {server.url()}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    from runner.embedded import EmbeddedPostgres

    typer.echo("stopped" if EmbeddedPostgres().stop() else "not running")


@db_app.command("status")
def db_status() -> None:
    """Is the embedded PostgreSQL running, where, and on which port."""
    from runner.embedded import EmbeddedPostgres

    state = EmbeddedPostgres().status()
    typer.echo(
        f"{'running' if state.running else 'stopped'} (pid {state.pid or '-'}), port {state.port}, "
        f"data {state.data_dir}{'' if state.initialized else ' (not initialised)'}"
        f"{f', PostgreSQL {state.version}' if state.version else ''}"
    )
    raise typer.Exit(EXIT_OK if state.running else 3)


@db_app.command("url")
def db_url() -> None:
    """Print the embedded server's connection URL (for psql or a notebook); it names the password file."""
    from runner.embedded import EmbeddedPostgres

    typer.echo(EmbeddedPostgres().url())


@db_app.command("env")
def db_env() -> None:
    """Print the PG* exports that point psql and dbt alone at the embedded server: eval "$(runner db env)"."""
    import shlex

    from runner.embedded import EmbeddedPostgres

    for name, value in EmbeddedPostgres().env().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop the embedded PostgreSQL and delete all its data."""
    from runner.embedded import EmbeddedPostgres

    server = EmbeddedPostgres()
    if not yes:
        typer.confirm(f"Delete every table in {server.status().data_dir}?", abort=True)
    server.reset()
    typer.echo("reset: the next start initialises an empty server")


@gcp_app.command("setup")
def gcp_setup() -> None:
    """Create the bucket and the datasets (main and landing) where missing; existing ones are left alone."""
    project = _project()
    warehouse = _warehouse(project, Target.bq)  # first: it says when the BigQuery extra is missing
    from google.api_core.exceptions import GoogleAPIError

    from runner.bigquery import ConfigError

    try:
        for line in warehouse.setup():
            typer.echo(line)
    except ConfigError as error:
        fail(str(error))
    except GoogleAPIError as error:
        fail(f"set-up failed: {error}", EXIT_MONTH_FAILED)
    finally:
        warehouse.close()


@cache_app.command("clean")
def cache_clean(cache_dir: CacheOption = None) -> None:
    """Delete the files the runner downloaded into its cache, and nothing else."""
    from runner.source import SourceError, clean_cache, default_cache_dir

    folder = cache_dir or default_cache_dir()
    try:
        files, freed = clean_cache(folder)
    except SourceError as error:
        fail(str(error))
    typer.echo(f"removed {files} file(s), {freed / 1e6:.1f} MB, from {folder}")


@app.command()
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
    project = _project()
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


@kestra_app.command("validate")
def kestra_validate(
    paths: Annotated[list[Path], typer.Argument(help="Flow files or folders of *.yml/*.yaml.")],
) -> None:
    """Check Kestra flow YAML offline: types, properties, ids, expressions, subflow inputs, 2.0 removals."""
    from runner.kestra.validate import validate_paths

    try:
        results = validate_paths(paths)
    except FileNotFoundError as missing:
        fail(f"no such file or folder: {missing}")
    if not results:
        fail("no *.yml/*.yaml flow files found")
    count = 0
    for problems in results.values():
        for problem in problems:
            typer.echo(str(problem))
            count += 1
    typer.echo(f"{count} problem(s) in {len(results)} flow file(s)")
    if count:
        raise typer.Exit(1)


@kestra_app.command("emit")
def kestra_emit(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the flow files into.")] = Path(
        "kestra/flows"
    ),
    namespace: Annotated[str, typer.Option("--namespace", help="Kestra namespace of the flows.")] = NAMESPACE,
) -> None:
    """Write the project's Kestra flows (one YAML file each) built from the dbt project and schedules.yml."""
    from runner.kestra.flows import emit

    try:
        paths = emit(out, namespace)
    except ValueError as error:
        fail(str(error))
    for path in paths:
        typer.echo(str(path))


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl-C does: the month in progress is settled


def main() -> None:
    """Console entry point: exit 0 ok, 1 a month failed, 2 bad usage or a crash, 130 interrupted."""
    import signal

    signal.signal(signal.SIGTERM, _stop)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:  # a crash: one line, not a traceback, and exit 2
        if os.environ.get("RUNNER_DEBUG"):
            raise
        typer.secho(
            f"error: {type(error).__name__}: {error} (set RUNNER_DEBUG=1 for the traceback)",
            err=True,
            fg=typer.colors.RED,
        )
        sys.exit(EXIT_USAGE)
