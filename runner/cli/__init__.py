"""`runner`: load NYC taxi months into Postgres or BigQuery through the nyc_taxi dbt project.

Thin commands: they parse options, pick the server, report progress and results; the work is in
the core modules (runner/pipeline.py, runner/schedule.py, ...). One module per command group:
  loads.py     load, backfill, remove, status
  report.py    report (the HTML page; runner/report.py makes it)
  schedule.py  schedule
  db.py        db start, stop, status, url, env, reset (the embedded PostgreSQL)
  cache.py     cache clean
  gcp.py       gcp setup
  kestra.py    kestra validate, emit
  common.py    what they share: exit codes, options, messages, the project and the warehouse
Heavy imports (dbt, psycopg2, rich, google) happen inside the commands, so `runner --help` answers
at once.
"""

from __future__ import annotations

import os
import sys

import typer

from runner.cli import cache, db, gcp, kestra, loads, report, schedule
from runner.cli.common import EXIT_INTERRUPTED, EXIT_USAGE

app = typer.Typer(
    help="Load NYC trip files (green, yellow, fhv; 2019-01 to 2021-07) into Postgres or BigQuery with dbt.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(loads.load)
app.command()(loads.backfill)
app.command()(loads.remove)
app.command()(loads.status)
app.command()(report.report)
app.command()(schedule.schedule)
app.add_typer(db.app, name="db")
app.add_typer(cache.app, name="cache")
app.add_typer(gcp.app, name="gcp")
app.add_typer(kestra.app, name="kestra")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl-C does: the month in progress is settled


def main() -> None:
    """Console entry point: exit 0 ok, 1 a month failed, 2 bad usage or a crash, 130 interrupted."""
    import signal

    from runner import signals

    if signal.SIGTERM in signals.handled():  # one the runner was started ignoring stays ignored
        signal.signal(signal.SIGTERM, _stop)
    signals.interrupts_survive_finalizers()
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
