"""What the dbt project declares, read once: taxi types, their CSV layout, the month range.

The dbt project is the single source of truth. The CSV columns come from the landing source
(`models/tripdata/_landing__sources.yml`), the accepted months from `dbt_project.yml` vars,
so the runner and the macros cannot disagree about them.
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

    def filename(self, month: Month) -> str:
        return f"{self.name}_tripdata_{month}.csv.gz"

    def landing_table(self, month: Month) -> str:
        return f"{self.name}_tripdata_{month.year:04d}_{month.month:02d}"

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
    dbt_files: tuple[
        str, ...
    ] = ()  # what dbt reads: dbt_project.yml and its *-paths folders that exist, as globs

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
def load_project(root: Path = PROJECT_DIR) -> Project:
    import yaml  # a dependency of dbt-core

    settings = yaml.safe_load((root / "dbt_project.yml").read_text())
    project_vars = settings.get("vars", {})
    sources = yaml.safe_load((root / "models" / "tripdata" / "_landing__sources.yml").read_text())
    (landing,) = (s for s in sources["sources"] if s["name"] == "landing")
    taxis = {}
    for table in landing["tables"]:
        name = table["name"].removesuffix("_tripdata")
        taxis[name] = TaxiSpec(
            name=name,
            columns=tuple(column["name"] for column in table["columns"]),
            pickup_column=table["config"]["meta"]["pickup_column"],
            dropoff_column=table["config"]["meta"]["dropoff_column"],
        )
    path_keys = ("model-paths", "macro-paths", "seed-paths", "test-paths", "analysis-paths", "snapshot-paths")
    folders = [f for key in path_keys for f in settings.get(key, []) if (root / f).is_dir()]
    return Project(
        root=root,
        taxis=taxis,
        first_month=Month.parse(project_vars["first_month"]),
        last_month=Month.parse(project_vars["last_month"]),
        landing_schema_suffix=project_vars["landing_schema_suffix"],
        dbt_files=("dbt_project.yml", *(f"{folder}/**" for folder in folders)),
    )
