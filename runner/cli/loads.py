"""`runner load`, `backfill`, `remove` and `status`: the months in the warehouse (runner/pipeline.py).

`_run` assembles a load or backfill: the pipeline, its progress bars or JSON lines, the summary and
the command that resumes a run with failed months.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli.common import (
    EXIT_MONTH_FAILED,
    AllowOtherMonthOption,
    CacheOption,
    ForceOption,
    RunOptions,
    SourceOption,
    Target,
    TargetOption,
    TaxiOption,
    YesOption,
    fail,
    interrupted,
    load_project,
    open_warehouse,
)

if TYPE_CHECKING:
    from runner.pipeline import MonthOutcome, Pipeline, RunResult
    from runner.project import Month, Project, TaxiSpec


MonthOption = Annotated[str, typer.Option("--month", "-m", help="File month, YYYY-MM.")]
JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=8, help="Months loaded at once (worker processes).")
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan (each month: load, retry, reload, check or skip, and why) and load nothing.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="JSON lines on stdout: one per month, then a summary.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or table: failures only.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Print the plan before loading.")]
LogFileOption = Annotated[
    Path | None,
    typer.Option(help="Append the plan and every month's outcome to this file, as JSON lines."),
]


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


def _open_pipeline(options: RunOptions) -> Pipeline:
    """The pipeline of a load or backfill, on the target's warehouse (its settings checked)."""
    from runner.pipeline import Settings, make_pipeline
    from runner.source import default_cache_dir

    project = load_project(options.target)
    settings = Settings(
        source=options.source,
        cache_dir=options.cache_dir or default_cache_dir(),
        force=options.force,
        allow_other_month=options.allow_other_month,
        jobs=options.jobs,
    )
    warehouse = open_warehouse(project, options.target)
    return make_pipeline(project.root, settings, options.target.value, warehouse=warehouse)


def _ledger_pipeline(project: Project, target: Target) -> Pipeline:
    """A pipeline that only reads and writes the warehouse (status, remove): no bucket needed."""
    from runner.pipeline import Settings, make_pipeline
    from runner.source import default_cache_dir

    warehouse = open_warehouse(project, target, need_bucket=False)
    return make_pipeline(project.root, Settings(None, default_cache_dir()), target.value, warehouse)


def _run(
    months: list[tuple[TaxiSpec, Month]],
    options: RunOptions,
    dry_run: bool = False,
    output: Output | None = None,
) -> None:
    """A load or backfill: plan, then load with progress bars (or print the plan), then report."""
    from runner.progress import RichReporter, print_plan

    _check_source(options.source)
    output = output or Output()
    pipeline = None
    try:
        pipeline = _open_pipeline(options)
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
    _report(result, options, output)


def _report(result: RunResult, options: RunOptions, output: Output) -> None:
    """The run's summary (a table, or a JSON line) and, when a month failed, the command that resumes."""
    from runner.progress import print_summary

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


def load(
    taxi: TaxiOption,
    month: MonthOption,
    source: SourceOption = None,
    force: ForceOption = False,
    allow_other_month: AllowOtherMonthOption = False,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
) -> None:
    """Load one file month, end to end: download, land, merge, record."""
    from runner.project import UsageError

    try:
        project = load_project(target)
        plan = [(spec, project.month(month)) for spec in _taxis(project, taxi)]
    except UsageError as error:
        fail(str(error))
    _run(plan, RunOptions(source, cache_dir, target, force, allow_other_month))


def backfill(
    taxi: TaxiOption,
    start: Annotated[str, typer.Option(help="First file month, YYYY-MM.")],
    end: Annotated[str, typer.Option(help="Last file month, YYYY-MM (included).")],
    source: SourceOption = None,
    force: ForceOption = False,
    allow_other_month: AllowOtherMonthOption = False,
    cache_dir: CacheOption = None,
    target: TargetOption = Target.pg,
    jobs: JobsOption = 1,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    log_file: LogFileOption = None,
) -> None:
    """Load a range of file months, oldest first; months already loaded from the same file are skipped.

    The plan comes from the ledger first, without downloading: months loaded from an identical file
    are skipped, failed or interrupted ones are tried again. Exit 1 when a month failed, with the
    command that resumes.
    """
    from runner.project import UsageError, month_range

    try:
        project = load_project(target)
        months = month_range(project.month(start), project.month(end))
        plan = [(spec, month) for spec in _taxis(project, taxi) for month in months]
    except UsageError as error:
        fail(str(error))
    output = Output(as_json=as_json, quiet=quiet, verbose=verbose, log_file=log_file)
    options = RunOptions(source, cache_dir, target, force, allow_other_month, jobs)
    _run(plan, options, dry_run=dry_run, output=output)


def remove(
    taxi: Annotated[str, typer.Option("--taxi", "-t", help="Taxi type: green, yellow or fhv.")],
    month: MonthOption,
    reason: Annotated[str | None, typer.Option(help="Why, for the ledger.")] = None,
    yes: YesOption = False,
    target: TargetOption = Target.pg,
) -> None:
    """Remove a file month: its rows leave the main table and the models, in one transaction, and the
    ledger records it. A month with failed loads only gets the same record, which clears them."""
    from runner.dbt import DbtError
    from runner.pipeline import WarehouseError
    from runner.project import UsageError

    try:
        project = load_project(target)
        spec, file_month = project.taxi(taxi), project.month(month)
    except UsageError as error:
        fail(str(error))
    if not yes:
        typer.confirm(f"Remove {spec.name} {file_month} from the warehouse and the models?", abort=True)
    pipeline = _ledger_pipeline(project, target)
    try:
        removed = pipeline.remove_month(spec, file_month, reason)
    except (DbtError, WarehouseError) as error:
        fail(str(error), EXIT_MONTH_FAILED)
    except KeyboardInterrupt as stop:
        interrupted(stop, "the ledger says whether the month was removed: `runner status`")
    finally:
        pipeline.warehouse.close()
    held = f"{removed['rows_loaded']:,} rows of load {removed['load_id']}" if removed else "no rows"
    typer.echo(f"removed {spec.name} {file_month} ({held}); the ledger records it")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledger's view as JSON lines.")] = False,
    target: TargetOption = Target.pg,
) -> None:
    """What is loaded: a grid of taxi type x file month with rows and state, and whether the models
    reflect each month's rows."""
    from runner.progress import print_status

    project = load_project(target)
    pipeline = _ledger_pipeline(project, target)
    try:
        states = pipeline.month_status()
    finally:
        pipeline.warehouse.close()
    print_status(project, states, as_json=as_json)
