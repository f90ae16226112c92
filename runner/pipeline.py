"""The runner's core: one month from source to main table, and a run over many months.

No CLI here: the commands in runner/cli/ parse and report; this module does the work and
is what the tests drive. Per month: fetch (download or local file) -> skip if the month is
already loaded from the same bytes -> open a ledger row (dbt) -> check the header -> COPY
into the landing table -> merge (dbt). Downstream models are built once at the end of a run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.csvfile import FileError, read_header
from runner.dbt import Dbt, DbtError, dbt_for
from runner.plan import MonthPlan, holds_file, plan_months
from runner.project import Month, Project, TaxiSpec
from runner.source import FetchedFile, SourceError, fetch, is_local
from runner.warehouse import WarehouseError

__all__ = [
    "MonthOutcome",
    "Pipeline",
    "RunInterrupted",
    "RunResult",
    "Settings",
    "Warehouse",
    "WarehouseError",
]

MAX_COPY_STREAMS = 4
MODEL_LOADS = "model.nyc_taxi.model_loads"  # per taxi month: the main table's load, the models' load
LOADS = "model.nyc_taxi.stg_ingestion__loads"  # the ledger, interrupted loads shown as such


class Reporter(Protocol):
    """What the pipeline tells its caller while it works (the CLI draws progress bars)."""

    def stage(self, spec: TaxiSpec, month: Month, stage: str, total: int | None = None) -> None: ...
    def advance(self, done: int, total: int | None = None) -> None: ...
    def warn(self, text: str) -> None: ...
    def models(self, done: int, total: int, node: str) -> None: ...


def make_pipeline(
    project_root: Path, settings: Settings, target: str = "pg", warehouse: Warehouse | None = None
) -> Pipeline:
    """A Pipeline for a target, as the CLI builds one (and each worker of a parallel backfill)."""
    from runner.project import load_project

    project = load_project(project_root, target)
    if warehouse is None and target == "bq":
        from runner.bigquery import BigQueryWarehouse

        warehouse = BigQueryWarehouse.for_project(project)
    elif warehouse is None:
        from runner.warehouse import Warehouse as PostgresWarehouse

        warehouse = PostgresWarehouse.for_project(project, copy_streams=settings.copy_streams)
    return Pipeline(
        project=project, settings=settings, warehouse=warehouse, dbt=dbt_for(project.root, target)
    )


class Warehouse(Protocol):
    """The runner's side of a warehouse: landing a file, and reading the ledger.

    runner/warehouse.py (Postgres: COPY) and runner/bigquery.py (BigQuery: GCS and a load job).
    """

    def runner_lock(self, taxi: str, month: Month) -> AbstractContextManager[None]: ...
    def begin_load_options(self) -> dict[str, Any]: ...
    def land(
        self, spec: TaxiSpec, month: Month, path: Path, checksum: str, progress: Callable[[int], None]
    ) -> dict[str, Any]: ...
    def load(self, load_id: str) -> dict[str, Any] | None: ...
    def current_loads(
        self, rule: str, taxi: str | None = None, month: Month | None = None
    ) -> list[dict[str, Any]]: ...
    def month_states(self, rule: str, loads: str | None = None) -> list[dict[str, Any]]: ...
    def model_loads(self, relation: str) -> list[dict[str, Any]] | None: ...
    def select(self, sql: str, needs: str) -> list[dict[str, Any]] | None: ...
    def relation_comment(self, relation: str) -> str | None: ...
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

    def models(self, done: int, total: int, node: str) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    source: str | None  # None: the public URL pattern
    cache_dir: Path
    force: bool = False  # reload months already loaded from the same file
    allow_other_month: bool = False  # load a file even when most of its pickups are in another month
    jobs: int = 1  # months loaded at once (worker processes)
    retries: int = 2  # a month that fails because the warehouse went away is tried again this often
    retry_backoff: float = 2.0  # seconds before the first retry, doubled each time

    @property
    def copy_streams(self) -> int:
        """COPY sessions per month (Postgres): this machine's cores shared by the months loaded at
        once, at most MAX_COPY_STREAMS. The server computes every row's id as it stores it, a
        core's work per session; a server on this machine has these cores, another one likely more."""
        return max(1, min(MAX_COPY_STREAMS, (os.cpu_count() or 1) // self.jobs))


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
    transient: bool = False  # failed because the warehouse went away or was busy: worth another try

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class RunResult:
    outcomes: list[MonthOutcome] = field(default_factory=list)
    downstream_error: str | None = None
    months_seconds: float = 0.0  # wall time of the months' loads (in parallel with --jobs)
    models_seconds: float = 0.0  # wall time of the one build of the models downstream
    models_months: list[str] = field(default_factory=list)  # file months whose models the run rebuilt
    models_behind: list[str] = field(default_factory=list)  # "green 2020-10": behind before the run

    @property
    def failed(self) -> bool:
        return self.downstream_error is not None or any(o.failed for o in self.outcomes)


@dataclass(frozen=True)
class ModelsState:
    """Where the analytics models stand against the ledger and the project's seeds."""

    built: bool  # model_loads exists: the models were built at least once
    behind: tuple[tuple[str, Month], ...] = ()  # taxi months whose models reflect another load
    loaded: tuple[Month, ...] = ()  # every file month the main tables hold
    changed: tuple[str, ...] = ()  # seeds and views whose file changed since they were built


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; `lines` say what the warehouse holds after it."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Pipeline:
    project: Project
    settings: Settings
    warehouse: Warehouse
    dbt: Dbt
    reporter: Reporter = field(default_factory=QuietReporter)

    @property
    def ledger_rule(self) -> str:
        """How to read the ledger, defined once (macros/common/ledger.sql current_loads), in the
        target's SQL: the runner's queries select from it."""
        return self.dbt.compile_inline("{{ current_loads() }}")

    def current_load(self, spec: TaxiSpec, month: Month) -> dict[str, Any] | None:
        """The load whose rows the month holds, or None (never loaded, or removed)."""
        found = self.warehouse.current_loads(self.ledger_rule, spec.name, month)
        return found[0] if found else None

    def plan(self, months: list[tuple[TaxiSpec, Month]]) -> list[MonthPlan]:
        """What will happen to each month, from the ledger and the source, without downloading."""
        rule = self.ledger_rule
        return plan_months(
            months,
            self.warehouse.month_states(rule),
            self.warehouse.current_loads(rule),
            self.settings.source,
            self.settings.cache_dir,
            self.settings.force,
        )

    def run(
        self,
        months: list[tuple[TaxiSpec, Month]],
        on_done: Callable[[MonthOutcome], None] | None = None,
        plan: list[MonthPlan] | None = None,
    ) -> RunResult:
        """Load the months (oldest first; `settings.jobs` at once), then build the models downstream once.

        Months the plan finds loaded from an identical file are skipped without a download. The
        models build covers the months this run changed and the months whose models were behind
        the ledger before it (an interrupted models build, a load by dbt alone).
        """
        result = RunResult()
        self.dbt.parse()  # before anything changes: Ctrl-C while dbt starts leaves nothing to undo
        before = self.models_state()
        result.models_behind = [f"{taxi} {month}" for taxi, month in before.behind]
        if before.behind:
            self.reporter.warn(
                f"the models of {', '.join(result.models_behind)} are behind the ledger"
                " (a models build was interrupted, or dbt alone loaded without building them):"
                " this run rebuilds them"
            )

        def done(outcome: MonthOutcome) -> None:
            result.outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)

        started = time.monotonic()
        decided = plan if plan is not None else self.plan(months)
        try:
            self._load_months(decided, done)
        except KeyboardInterrupt:
            raise RunInterrupted(self._after_interrupt(decided, result)) from None
        result.outcomes.sort(key=lambda o: (o.taxi, o.month))
        result.months_seconds = time.monotonic() - started

        changed = [(o.taxi, o.month) for o in result.outcomes if o.status in ("loaded", "replaced")]
        started = time.monotonic()
        try:
            self.build_models(changed, before, result)
        except KeyboardInterrupt:
            raise RunInterrupted(self._after_interrupt(decided, result, models_started=True)) from None
        result.models_seconds = time.monotonic() - started
        return result

    def _load_months(self, plan: list[MonthPlan], done: Callable[[MonthOutcome], None]) -> None:
        to_load = []
        for decided in plan:
            if decided.action != "skip":
                to_load.append((decided.spec, decided.month))
                continue
            if decided.last_state in ("failed", "running"):
                # the month's last attempt failed or was cut off, and the file is the one loaded:
                # on record as an unchanged load, so the ledger (and `runner status`) say it is fine
                self._confirm_unchanged(decided)
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

    def models_state(self) -> ModelsState:
        """From model_loads (a dbt view) and the seeds' tables: what the models build must catch up on."""
        manifest = self.dbt.parse()
        rows = self.warehouse.model_loads(manifest.nodes[MODEL_LOADS].relation_name)
        changed = tuple(
            name
            for name, (relation, checksum) in sorted(self.dbt.built_from_files().items())
            if checksum not in (self.warehouse.relation_comment(relation) or "")
        )
        if rows is None:
            return ModelsState(built=False, changed=changed)
        return ModelsState(
            built=True,
            behind=tuple(
                sorted(
                    (row["taxi"], Month.of(row["file_month"])) for row in rows if not row["models_current"]
                )
            ),
            loaded=tuple(sorted({Month.of(row["file_month"]) for row in rows})),
            changed=changed,
        )

    def month_status(self) -> list[dict[str, Any]]:
        """The ledger's view per taxi and file month (Warehouse.month_states), and whether the
        models reflect the month's rows: `models` is current, behind, or None (nothing loaded)."""
        nodes = self.dbt.parse().nodes
        states = self.warehouse.month_states(self.ledger_rule, nodes[LOADS].relation_name)
        rows = self.warehouse.model_loads(nodes[MODEL_LOADS].relation_name) or []
        current = {(row["taxi"], Month.of(row["file_month"])): row["models_current"] for row in rows}
        for state in states:
            loaded = state["rows_loaded"] is not None and state["action"] != "removed"
            state["models"] = (
                ("current" if current.get((state["taxi"], Month.of(state["file_month"]))) else "behind")
                if loaded
                else None
            )
        return states

    def build_models(self, changed: list[tuple[str, Month]], state: ModelsState, result: RunResult) -> None:
        """Build what is downstream of the months changed and the months behind, for those months only.

        The selection is the main tables changed and what is downstream of them (dbt's `green_tripdata+`)
        that holds their taxi type (tag `green` or `every_taxi`: the ledger's view links every main
        table to every model, and a green month must not rebuild the fhv marts), with var
        refresh_months: the incremental models replace those file months, the data tests check those
        months. A seed or view whose file changed since it was built is rebuilt, and with
        it every month (the mart names zones, sums what fact_trips says). Models never built: the
        whole project, once.
        """
        months = sorted({month for _, month in changed} | {month for _, month in state.behind})
        taxis = sorted({taxi for taxi, _ in changed} | {taxi for taxi, _ in state.behind})
        select: list[str] | None = [
            f"{self.project.taxi(taxi).main_table}+,tag:{tag}"
            for taxi in taxis
            for tag in (taxi, "every_taxi")
        ]
        if not state.built:
            select = None  # the first build makes every model; a plain build takes every month
        elif state.changed:
            self.reporter.warn(
                f"the project's {', '.join(state.changed)} changed since built: rebuilding"
                f" {'it' if len(state.changed) == 1 else 'them'} and every month's models"
            )
            months = list(state.loaded)
            select = [f"{name}+" for name in state.changed] + [
                f"{spec.main_table}+" for spec in self.project.taxis.values()
            ]
        elif not months:
            return
        result.models_months = [str(month) for month in months]
        # a first build takes every month and tests every month
        variables = {"refresh_months": result.models_months} if select else None
        try:
            # one build of the models at a time per warehouse (dbt's temporary relations collide)
            with self.warehouse.models_lock():
                self.dbt.on_node_start = self.reporter.models
                self.dbt.build(select=select, variables=variables, indirect="eager")
        except DbtError as error:
            result.downstream_error = str(error)
        finally:
            self.dbt.on_node_start = None

    def _after_interrupt(
        self, plan: list[MonthPlan], result: RunResult, models_started: bool = False
    ) -> list[str]:
        """What the warehouse holds after Ctrl-C, from the ledger (the truth, whatever was cut off)."""
        lines = []
        try:
            self.warehouse.close()  # a cut-off COPY leaves the connection unusable
            merged = []
            for decided in plan:
                if decided.action == "skip":
                    continue
                current = self.current_load(decided.spec, decided.month)
                if current is not None and current["load_id"] != decided.load_id:
                    merged.append(f"{decided.spec.name} {decided.month}")
                elif (decided.spec.name, decided.month) not in {(o.taxi, o.month) for o in result.outcomes}:
                    lines.append(
                        f"{decided.spec.name} {decided.month}: stopped before its merge committed; "
                        "the month is as it was"
                    )
        except WarehouseError as error:
            return [*lines, f"the ledger could not be read after the interrupt: {error}"]
        finally:
            self.warehouse.close()
        if merged:
            lines.append(f"merged before the interrupt, and kept: {', '.join(merged)}")
        behind = merged + (result.models_behind if models_started else [])
        if behind:
            lines.append(
                f"the models of {', '.join(dict.fromkeys(behind))} are behind the ledger:"
                " the next run rebuilds them"
            )
        return lines or ["nothing was changed"]

    def load_month(self, spec: TaxiSpec, month: Month) -> MonthOutcome:
        """One month, tried again with backoff when it failed because the warehouse went away."""
        started = time.monotonic()
        for attempt in range(self.settings.retries + 1):
            outcome = self._load_month(spec, month)
            if not (outcome.failed and outcome.transient) or attempt == self.settings.retries:
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
            return self._failed(load_id, spec, month, error, unpublished=error.status in (404, 410))

        try:
            with self.warehouse.runner_lock(spec.name, month) as loader:
                return self._land_and_merge(spec, month, fetched, load_id, loader)
        except WarehouseError as error:  # the connection was lost outside a load step (lock, ledger reads)
            return self._failed(load_id, spec, month, error, transient=error.transient)

    def _land_and_merge(
        self, spec: TaxiSpec, month: Month, fetched: FetchedFile, load_id: str, loader: dict | None
    ) -> MonthOutcome:
        current = self.current_load(spec, month)
        if holds_file(current, fetched.sha256, self.settings.force):
            return MonthOutcome(
                spec.name,
                month,
                "skipped",
                rows=current["rows_loaded"],
                message=f"already loaded from the same file (load {current['load_id']})",
                load_id=current["load_id"],
            )

        try:
            header, readable = read_header(fetched.path)
            self._begin_load(
                spec,
                month,
                load_id,
                loader,
                source_url=fetched.source_url,
                bytes=fetched.size,
                checksum=fetched.sha256,
                header=header,  # checked there: one rule for every path that lands a file
                readable=readable,
                **self.warehouse.begin_load_options(),
            )
            self.reporter.stage(spec, month, "copy", total=fetched.size)
            landed = self.warehouse.land(spec, month, fetched.path, fetched.sha256, self.reporter.advance)
            self.reporter.stage(spec, month, "merge")
            self._merge(
                spec,
                month,
                load_id,
                force=self.settings.force,
                allow_other_month=self.settings.allow_other_month,
                **landed,
            )
        except (FileError, WarehouseError, DbtError) as error:
            if isinstance(error, FileError) and not is_local(self.settings.source):
                fetched.path.unlink(missing_ok=True)  # a corrupt download must not be served from cache again
            # a FileError never is transient
            return self._failed(load_id, spec, month, error, transient=getattr(error, "transient", False))
        except KeyboardInterrupt:
            self._end_interrupted_load(load_id)
            raise

        load = self.warehouse.load(load_id) or {}
        if load.get("state") != "succeeded":
            message = (
                load.get("error") or f"the ledger shows load {load_id} as {load.get('state', 'missing')}"
            )
            return MonthOutcome(spec.name, month, "failed", message=message, load_id=load_id)
        return MonthOutcome(spec.name, month, load["action"], rows=load["rows_loaded"], load_id=load_id)

    def remove_month(self, spec: TaxiSpec, month: Month, reason: str | None = None) -> dict[str, Any] | None:
        """The month's rows out of the main table and the models, in one transaction, on record in
        the ledger (action removed): macros/common/remove_month.sql. Returns the load it removed."""
        current = self.current_load(spec, month)
        load_id = str(uuid.uuid4())
        with self.warehouse.runner_lock(spec.name, month):
            self.dbt.run_operation(
                "tripdata_remove_month",
                {
                    "taxi": spec.name,
                    "month": str(month),
                    "load_id": load_id,
                    "reason": reason,
                    "removed_by": "runner",
                },
            )
        return current

    def _end_interrupted_load(self, load_id: str) -> None:
        """After Ctrl-C in a month's load: its ledger row, if still running, is marked failed.

        A merge that committed stays succeeded (tripdata_fail_load changes running rows only).
        If dbt cannot do it, the row ends as abandoned: its loader's session ends with this process.
        """
        self.warehouse.close()  # frees the month (the runner lock) and drops a cut-off COPY
        with suppress(DbtError):
            self.dbt.run_operation(
                "tripdata_fail_load", {"load_id": load_id, "error": "interrupted (Ctrl-C or SIGTERM)"}
            )

    def _confirm_unchanged(self, decided: MonthPlan) -> None:
        """Best effort: an `unchanged` load of the month from the file it holds (ends abandoned loads too)."""
        spec, month = decided.spec, decided.month
        load_id = str(uuid.uuid4())
        try:
            with self.warehouse.runner_lock(spec.name, month) as loader:
                self._begin_load(spec, month, load_id, loader, checksum=decided.checksum)
                # nothing landed: the merge finds the month loaded from this file and records it so
                self._merge(spec, month, load_id)
        except (DbtError, WarehouseError) as failure:
            self.reporter.warn(f"could not tidy the ledger of {spec.name} {month}: {failure}")

    def _begin_load(
        self, spec: TaxiSpec, month: Month, load_id: str, loader: dict | None, **file: Any
    ) -> None:
        """The load on record as running, tied to `loader` (the session holding the runner lock: the
        load dies with it), and the month's landing table ready (macros/common/ledger.sql)."""
        self.dbt.run_operation(
            "tripdata_begin_load",
            {
                "taxi": spec.name,
                "month": str(month),
                "load_id": load_id,
                "filename": spec.filename(month),
                "loaded_by": "runner",
                "loader": loader,
                **file,
            },
        )

    def _merge(self, spec: TaxiSpec, month: Month, load_id: str, **options: Any) -> None:
        """The month's main-table model: merges what landed (or, from the same file, records the
        load `unchanged`) and finishes the load in the ledger (macros/materializations/tripdata_month.sql)."""
        with self.warehouse.merge_lock():
            self.dbt.build(
                select=[spec.main_table],
                variables={"taxi": spec.name, "month": str(month), "load_id": load_id, **options},
                populate_cache=False,
            )

    def _failed(
        self, load_id: str, spec: TaxiSpec, month: Month, error: Exception, **flags: bool
    ) -> MonthOutcome:
        """The month failed: on record in the ledger, and the outcome that says why."""
        self._record_failure(load_id, spec, month, str(error))
        return MonthOutcome(spec.name, month, "failed", message=str(error), load_id=load_id, **flags)

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
