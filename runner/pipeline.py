"""The runner's core: one month from source to main table, and a run over many months.

No CLI here: the commands in runner/cli.py parse and report; this module does the work and
is what the tests drive. Per month: fetch (download or local file) -> skip if the month is
already loaded from the same bytes -> open a ledger row (dbt) -> check the header -> COPY
into the landing table -> merge (dbt). Downstream models are built once at the end of a run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.csvfile import FileError, check_header
from runner.dbt import Dbt, DbtError
from runner.plan import MonthPlan, plan_months
from runner.project import Month, Project, TaxiSpec
from runner.source import FetchedFile, SourceError, fetch, is_local
from runner.warehouse import WarehouseError

__all__ = ["MonthOutcome", "Pipeline", "RunResult", "Settings", "Warehouse", "WarehouseError"]


class Reporter(Protocol):
    """What the pipeline tells its caller while it works (the CLI draws progress bars)."""

    def stage(self, spec: TaxiSpec, month: Month, stage: str, total: int | None = None) -> None: ...
    def advance(self, done: int, total: int | None = None) -> None: ...
    def warn(self, text: str) -> None: ...


# What a lost or refused warehouse connection says (psycopg2, dbt, the Google clients): worth a retry.
TRANSIENT_MARKERS = (
    "the connection to the warehouse was lost",  # runner/warehouse.py connection_lost
    "server closed the connection unexpectedly",
    "terminating connection",
    "could not connect to server",
    "connection to server at",
    "connection refused",
    "connection already closed",
    "the database system is starting up",
    "the database system is shutting down",
    "ServiceUnavailable",
    "due to concurrent update",  # BigQuery cancels one of two transactions that change the same table
    "503 ",
)


def is_transient(message: str) -> bool:
    return any(marker in message for marker in TRANSIENT_MARKERS)


def make_pipeline(
    project_root: Path, settings: Settings, target: str = "pg", warehouse: Warehouse | None = None
) -> Pipeline:
    """A Pipeline for a target, as the CLI builds one (and each worker of a parallel backfill)."""
    from runner.project import load_project

    project = load_project(project_root)
    if warehouse is None and target == "bq":
        from runner.bigquery import BigQueryWarehouse

        warehouse = BigQueryWarehouse.for_project(project.landing_schema_suffix)
    elif warehouse is None:
        from runner.warehouse import Warehouse as PostgresWarehouse

        warehouse = PostgresWarehouse.for_project(project.landing_schema_suffix)
    dbt = Dbt(project_dir=project.root, profiles_dir=project.root / "profiles", target=target)
    return Pipeline(project=project, settings=settings, warehouse=warehouse, dbt=dbt)


class Warehouse(Protocol):
    """The runner's side of a warehouse: landing a file, and reading the ledger.

    runner/warehouse.py (Postgres: COPY) and runner/bigquery.py (BigQuery: GCS and a load job).
    """

    def runner_lock(self, taxi: str, month: Month) -> AbstractContextManager[None]: ...
    def land(
        self, spec: TaxiSpec, month: Month, path: Path, checksum: str, progress: Callable[[int], None]
    ) -> None: ...
    def load(self, load_id: str) -> dict[str, Any] | None: ...
    def last_success(self, taxi: str, month: Month) -> dict[str, Any] | None: ...
    def month_states(self) -> list[dict[str, Any]]: ...
    def models_lock(self) -> AbstractContextManager[None]: ...
    def merge_lock(self) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...


class QuietReporter:
    def stage(self, spec: TaxiSpec, month: Month, stage: str, total: int | None = None) -> None:
        pass

    def advance(self, done: int, total: int | None = None) -> None:
        pass

    def warn(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    source: str | None  # None: the public URL pattern
    cache_dir: Path
    force: bool = False  # reload months already loaded from the same file
    jobs: int = 1  # months loaded at once (worker processes)
    retries: int = 2  # a month that fails because the warehouse went away is tried again this often
    retry_backoff: float = 2.0  # seconds before the first retry, doubled each time


@dataclass
class MonthOutcome:
    taxi: str
    month: Month
    status: str  # loaded | replaced | unchanged | skipped | failed
    rows: int | None = None
    seconds: float = 0.0
    message: str = ""
    load_id: str | None = None
    unpublished: bool = False  # failed because the source has no such file (HTTP 404/410): not yet out

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class RunResult:
    outcomes: list[MonthOutcome] = field(default_factory=list)
    downstream_error: str | None = None
    months_seconds: float = 0.0  # wall time of the months' loads (in parallel with --jobs)
    models_seconds: float = 0.0  # wall time of the one build of the models downstream

    @property
    def failed(self) -> bool:
        return self.downstream_error is not None or any(o.failed for o in self.outcomes)


@dataclass
class Pipeline:
    project: Project
    settings: Settings
    warehouse: Warehouse
    dbt: Dbt
    reporter: Reporter = field(default_factory=QuietReporter)

    def plan(self, months: list[tuple[TaxiSpec, Month]]) -> list[MonthPlan]:
        """What will happen to each month, from the ledger and the source, without downloading."""
        return plan_months(
            months, self.warehouse, self.settings.source, self.settings.cache_dir, self.settings.force
        )

    def run(
        self,
        months: list[tuple[TaxiSpec, Month]],
        on_done: Callable[[MonthOutcome], None] | None = None,
        plan: list[MonthPlan] | None = None,
    ) -> RunResult:
        """Load the months (oldest first; `settings.jobs` at once), then build the models downstream once.

        Months the plan finds loaded from an identical file are skipped without a download.
        """
        result = RunResult()

        def done(outcome: MonthOutcome) -> None:
            result.outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)

        started = time.monotonic()
        to_load = []
        for decided in plan if plan is not None else self.plan(months):
            if decided.action != "skip":
                to_load.append((decided.spec, decided.month))
                continue
            if decided.last_state == "running":
                self._end_abandoned_loads(decided.spec, decided.month)  # a killed reload left its row
            done(
                MonthOutcome(
                    decided.spec.name,
                    decided.month,
                    "skipped",
                    rows=decided.rows_loaded,
                    message=decided.reason,
                    load_id=decided.load_id,
                )
            )
        if self.settings.jobs > 1 and len(to_load) > 1:
            from runner.parallel import load_months

            self.warehouse.close()  # the workers open their own connections
            load_months(
                to_load, self.settings.jobs, self.project.root, self.settings, self.dbt.target or "pg", done
            )
        else:
            for spec, month in to_load:
                done(self.load_month(spec, month))
        result.outcomes.sort(key=lambda o: (o.taxi, o.month))
        result.months_seconds = time.monotonic() - started

        changed = sorted({str(o.month) for o in result.outcomes if o.status in ("loaded", "replaced")})
        if changed:
            started = time.monotonic()
            try:
                # one build of the models at a time per warehouse (dbt's temporary relations collide);
                # the analytics models rebuild exactly the file months this run changed
                with self.warehouse.models_lock():
                    self.dbt.build(variables={"refresh_months": changed})
            except DbtError as error:
                result.downstream_error = str(error)
            result.models_seconds = time.monotonic() - started
        return result

    def load_month(self, spec: TaxiSpec, month: Month) -> MonthOutcome:
        """One month, tried again with backoff when it failed because the warehouse went away."""
        started = time.monotonic()
        for attempt in range(self.settings.retries + 1):
            outcome = self._load_month(spec, month)
            if not (outcome.failed and is_transient(outcome.message)) or attempt == self.settings.retries:
                break
            delay = self.settings.retry_backoff * 2**attempt
            self.reporter.warn(f"{spec.name} {month}: the warehouse went away; retrying in {delay:.0f}s")
            self.warehouse.close()
            time.sleep(delay)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _load_month(self, spec: TaxiSpec, month: Month) -> MonthOutcome:
        filename = spec.filename(month)
        load_id = str(uuid.uuid4())
        self.reporter.stage(spec, month, "fetch")
        try:
            fetched = fetch(
                spec.name,
                month,
                filename,
                source=self.settings.source,
                cache_dir=self.settings.cache_dir,
                progress=self.reporter.advance,
                warn=self.reporter.warn,
            )
        except SourceError as error:
            self._record_failure(load_id, spec, month, str(error))
            return MonthOutcome(
                spec.name,
                month,
                "failed",
                message=str(error),
                load_id=load_id,
                unpublished=error.status in (404, 410),
            )

        try:
            with self.warehouse.runner_lock(spec.name, month):
                return self._land_and_merge(spec, month, fetched, load_id)
        except WarehouseError as error:  # the connection was lost outside a load step (lock, ledger reads)
            self._record_failure(load_id, spec, month, str(error))
            return MonthOutcome(spec.name, month, "failed", message=str(error), load_id=load_id)

    def _land_and_merge(
        self, spec: TaxiSpec, month: Month, fetched: FetchedFile, load_id: str
    ) -> MonthOutcome:
        filename = spec.filename(month)
        current = self.warehouse.last_success(spec.name, month)
        if current is not None and current["checksum"] == fetched.sha256 and not self.settings.force:
            return MonthOutcome(
                spec.name,
                month,
                "skipped",
                rows=current["rows_loaded"],
                message=f"already loaded from the same file (load {current['load_id']})",
                load_id=current["load_id"],
            )

        try:
            self.dbt.run_operation(
                "tripdata_begin_load",
                {
                    "taxi": spec.name,
                    "month": str(month),
                    "load_id": load_id,
                    "filename": filename,
                    "source_url": fetched.source_url,
                    "bytes": fetched.size,
                    "checksum": fetched.sha256,
                    "loaded_by": "runner",
                },
            )
            check_header(spec, month, fetched.path)
            self.reporter.stage(spec, month, "copy", total=fetched.size)
            self.warehouse.land(spec, month, fetched.path, fetched.sha256, self.reporter.advance)
            self.reporter.stage(spec, month, "merge")
            with self.warehouse.merge_lock():
                self.dbt.build(
                    select=[spec.main_table],
                    variables={
                        "taxi": spec.name,
                        "month": str(month),
                        "load_id": load_id,
                        "force": self.settings.force,
                    },
                    populate_cache=False,
                )
        except (FileError, WarehouseError, DbtError) as error:
            if isinstance(error, FileError) and not is_local(self.settings.source):
                fetched.path.unlink(missing_ok=True)  # a corrupt download must not be served from cache again
            self._record_failure(load_id, spec, month, str(error))
            return MonthOutcome(spec.name, month, "failed", message=str(error), load_id=load_id)
        except KeyboardInterrupt:
            self._record_failure(load_id, spec, month, "interrupted")
            raise

        load = self.warehouse.load(load_id) or {}
        if load.get("state") != "succeeded":
            message = (
                load.get("error") or f"the ledger shows load {load_id} as {load.get('state', 'missing')}"
            )
            return MonthOutcome(spec.name, month, "failed", message=message, load_id=load_id)
        return MonthOutcome(spec.name, month, load["action"], rows=load["rows_loaded"], load_id=load_id)

    def _end_abandoned_loads(self, spec: TaxiSpec, month: Month) -> None:
        """Best effort: a running row whose loader is gone is marked failed (macros/common/ledger.sql)."""
        try:
            self.dbt.run_operation("tripdata_end_abandoned_loads", {"taxi": spec.name, "month": str(month)})
        except DbtError as failure:
            self.reporter.warn(f"could not tidy the ledger of {spec.name} {month}: {failure}")

    def _record_failure(self, load_id: str, spec: TaxiSpec, month: Month, error: str) -> None:
        """Best effort: the failure is reported to the user either way."""
        try:
            self.dbt.run_operation(
                "tripdata_fail_load",
                {
                    "load_id": load_id,
                    "error": error,
                    "taxi": spec.name,
                    "month": str(month),
                    "filename": spec.filename(month),
                },
            )
        except DbtError as failure:
            self.reporter.warn(f"could not record the failure in the ledger: {failure}")
