"""Months loaded by several worker processes at once (`runner backfill --jobs N`).

dbt is not safe to run from several threads of one process, so each worker is a process with
its own Pipeline (dbt parsed once per worker). Months are independent: each has its own landing
table and its own locks in the warehouse. Only the months' loads run in the workers; the models
downstream are built once, by the parent, at the end.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.pipeline import MonthOutcome, Pipeline, Settings
    from runner.project import Month, TaxiSpec

_worker: Pipeline | None = None


def _start_worker(project_root: str, settings: Settings, target: str) -> None:
    global _worker
    from runner.pipeline import make_pipeline

    _worker = make_pipeline(Path(project_root), settings, target)


def _load(taxi: str, month: str) -> MonthOutcome:
    assert _worker is not None
    return _worker.load_month(_worker.project.taxi(taxi), _worker.project.month(month))


def load_months(
    months: list[tuple[TaxiSpec, Month]],
    jobs: int,
    project_root: Path,
    settings: Settings,
    target: str,
    on_done: Callable[[MonthOutcome], None],
) -> None:
    """Load the months with `jobs` worker processes, oldest first; report each outcome as it ends."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds connections
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_start_worker,
        initargs=(str(project_root), settings, target),
    ) as pool:
        futures = [pool.submit(_load, spec.name, str(month)) for spec, month in months]
        try:
            for future in as_completed(futures):
                on_done(future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
