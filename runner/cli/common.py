"""What the command modules share: exit codes, the target, option types, the run options a resume
repeats, the error and progress messages, and opening the project and the warehouse.

Heavy imports (dbt, psycopg2, google) happen inside the functions, so `runner --help` answers at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from runner.bigquery import GcpConfig
    from runner.pipeline import Warehouse
    from runner.project import Project

EXIT_OK, EXIT_MONTH_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    list[str], typer.Option("--taxi", "-t", help="Taxi type: green, yellow or fhv (repeatable).")
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
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


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


def load_project(target: Target = Target.pg) -> Project:
    """The dbt project as dbt parses it for the target; the run's dbt calls reuse that parse."""
    from runner.dbt import DbtError
    from runner.project import load_project as parsed

    if target is Target.bq:
        gcp_config(need_bucket=False)  # dbt's bq profile reads these: missing ones are named first
    try:
        return parsed(target=target.value)
    except DbtError as error:
        fail(str(error))


def gcp_config(dataset: str = "", need_bucket: bool = True) -> GcpConfig:
    """The BigQuery target's settings, checked (the extra installed, the variables set)."""
    try:
        import google.cloud.bigquery  # noqa: F401 - an extra, not installed by default
    except ImportError:
        fail(
            "the BigQuery target needs the bigquery extra, which is not installed: "
            "pip install 'nyc-taxi-pipeline[bigquery]' (or `scripts/bootstrap dev`)"
        )
    from runner.bigquery import ConfigError, GcpConfig

    try:
        return GcpConfig.from_env(dataset, need_bucket=need_bucket)
    except ConfigError as error:
        fail(str(error))


def open_warehouse(project: Project, target: Target, need_bucket: bool = True) -> Warehouse:
    """The runner's side of the target warehouse, after checking its settings."""
    if target is Target.bq:
        from runner.bigquery import BigQueryWarehouse

        config = gcp_config(project.schema, need_bucket=need_bucket)
        info(f"using {config.describe()}")
        return BigQueryWarehouse.for_project(project, config)
    from runner.warehouse import Warehouse as PostgresWarehouse

    use_server()
    return PostgresWarehouse.for_project(project)
