"""What the dbt project declares, as dbt reads it: taxi types, their CSV layout, the month range.

The dbt project is the single source of truth, and dbt its only reader. The CSV columns and
the taxis' meta come from dbt's parse of the landing source (`models/tripdata/_landing__sources.yml`),
the accepted months from `dbt_project.yml` vars through dbt's own project reader, the schemas from
the sources as the target renders them. So the runner and the macros cannot disagree about them,
and whatever dbt accepts in those files the runner accepts too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

PROJECT_DIR = Path(os.environ.get("RUNNER_PROJECT_DIR", Path(__file__).resolve().parent.parent))

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class UsageError(ValueError):
    """A bad taxi type, month or range: the user's to fix, exit code 2."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH_RE.match(str(text).strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise UsageError(f"month {text!r} is not a month: use YYYY-MM, like 2019-01")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)


def month_range(start: Month, end: Month) -> list[Month]:
    if end < start:
        raise UsageError(f"the range ends ({end}) before it starts ({start})")
    months, month = [], start
    while month <= end:
        months.append(month)
        month = month.next()
    return months


@dataclass(frozen=True)
class TaxiSpec:
    """One taxi type: its file naming and CSV layout."""

    name: str
    columns: tuple[str, ...]
    pickup_column: str
    dropoff_column: str
    file_pattern: str  # var tripdata_file: "{taxi}_tripdata_{month}.csv.gz"

    def filename(self, month: Month) -> str:
        return self.file_pattern.replace("{taxi}", self.name).replace("{month}", str(month))

    def landing_table(self, month: Month) -> str:
        return f"{self.name}_tripdata_{month.year:04d}_{month.month:02d}"

    def incoming_table(self, month: Month) -> str:
        """The table a runner load COPYs into (macros/postgres/tables.sql, incoming_relation)."""
        return f"{self.landing_table(month)}_incoming"

    @property
    def main_table(self) -> str:
        return f"{self.name}_tripdata"


@dataclass(frozen=True)
class Project:
    root: Path
    taxis: dict[str, TaxiSpec]
    first_month: Month
    last_month: Month
    landing_schema_suffix: str
    file_pattern: str  # var tripdata_file: a month's file name, "{taxi}" and "{month}" (YYYY-MM) filled in
    schema: str  # the target's schema (BigQuery: dataset) of the main tables and the ledger
    landing_expiry_days: int  # BigQuery: a landing table a dead load left behind expires after this
    dbt_files: tuple[
        str, ...
    ] = ()  # what dbt reads: dbt_project.yml, packages.yml and the folders it names or reads, as globs

    @property
    def landing_schema(self) -> str:
        return self.schema + self.landing_schema_suffix

    def taxi(self, name: str) -> TaxiSpec:
        spec = self.taxis.get(str(name).strip().lower())
        if spec is None:
            raise UsageError(f"taxi {name!r} is not known: use one of {', '.join(sorted(self.taxis))}")
        return spec

    def month(self, text: str) -> Month:
        month = Month.parse(text)
        if not self.first_month <= month <= self.last_month:
            raise UsageError(
                f"month {month} is outside the project's range {self.first_month} to {self.last_month}"
                " (vars first_month and last_month in dbt_project.yml)"
            )
        return month

    @property
    def months(self) -> list[Month]:
        return month_range(self.first_month, self.last_month)


@cache
def load_project(root: Path = PROJECT_DIR, target: str = "pg") -> Project:
    """The project as dbt parsed it for a target (the parse the runner's dbt calls then reuse)."""
    from runner.dbt import dbt_for

    dbt = dbt_for(root, target)
    manifest, settings = dbt.parse(), dbt.project_settings()
    project_vars = settings.vars.vars
    sources = [source for source in manifest.sources.values() if source.package_name == settings.project_name]
    taxis = {
        source.name.removesuffix("_tripdata"): TaxiSpec(
            name=source.name.removesuffix("_tripdata"),
            columns=tuple(column.name for column in source.columns.values()),
            pickup_column=source.meta["pickup_column"],
            dropoff_column=source.meta["dropoff_column"],
            file_pattern=project_vars["tripdata_file"],
        )
        for source in sources
        if source.source_name == "landing"
    }
    (ledger,) = (s for s in sources if s.source_name == "ingestion" and s.name == "load_ledger")
    folders = [
        folder
        for folder in (
            *settings.model_paths,
            *settings.macro_paths,
            *settings.seed_paths,
            *settings.test_paths,
            *settings.analysis_paths,
            *settings.snapshot_paths,
        )
        if (root / folder).is_dir()
    ]
    # packages.yml's `local:` packages (vendor/) are installed by `dbt deps` from the project's files
    folders += [package.local for package in settings.packages.packages if getattr(package, "local", None)]
    package_files = [
        name for name in (settings.packages_specified_path, "package-lock.yml") if (root / name).is_file()
    ]
    return Project(
        root=root,
        taxis=taxis,
        first_month=Month.parse(project_vars["first_month"]),
        last_month=Month.parse(project_vars["last_month"]),
        landing_schema_suffix=project_vars["landing_schema_suffix"],
        file_pattern=project_vars["tripdata_file"],
        landing_expiry_days=int(project_vars["landing_expiry_days"]),
        schema=ledger.schema,
        dbt_files=("dbt_project.yml", *package_files, *(f"{folder}/**" for folder in dict.fromkeys(folders))),
    )
