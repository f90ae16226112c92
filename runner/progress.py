"""What the user sees: progress bars while months load, a summary table, the status grid."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from runner.pipeline import MonthOutcome, RunResult
    from runner.plan import MonthPlan
    from runner.project import Month, Project, TaxiSpec

STAGES = {"fetch": "downloading", "copy": "loading", "merge": "merging"}
STATUS_STYLE = {
    "loaded": "green",
    "replaced": "green",
    "unchanged": "cyan",
    "skipped": "cyan",
    "failed": "bold red",
    "running": "yellow",
    "interrupted": "red",
    "succeeded": "green",
}

stderr = Console(stderr=True)
stdout = Console()


class RichReporter:
    """Two bars: months done, and the current month's bytes (downloaded, then loaded)."""

    def __init__(self, total_months: int, quiet: bool = False) -> None:
        self._quiet = quiet  # no bars, no per-month lines: failures only
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )
        self._bytes = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=stderr,
            transient=True,
        )
        self._total_months = total_months
        self._months: TaskID | None = None
        self._current: TaskID | None = None

    def __enter__(self) -> RichReporter:
        from rich.console import Group
        from rich.live import Live

        self._months = self._progress.add_task("months", total=self._total_months)
        self._current = self._bytes.add_task("", total=None)
        if self._quiet:
            self._live = None
            return self
        self._live = Live(Group(self._progress, self._bytes), console=stderr, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def stage(self, spec: TaxiSpec, month: Month, stage: str, total: int | None = None) -> None:
        assert self._current is not None
        self._bytes.reset(
            self._current, total=total, description=f"{spec.name} {month} {STAGES.get(stage, stage)}"
        )

    def advance(self, done: int, total: int | None = None) -> None:
        assert self._current is not None
        if total is not None:
            self._bytes.update(self._current, total=total)
        self._bytes.update(self._current, completed=done)

    def warn(self, text: str) -> None:
        stderr.print(f"[yellow]warning:[/] {text}", highlight=False)

    def models(self, done: int, total: int, node: str) -> None:
        """The models build after the months: which node of how many dbt is on."""
        assert self._current is not None
        self._bytes.reset(self._current, total=None, description=f"models {done}/{total}: {node}")

    def month_done(self, outcome: MonthOutcome) -> None:
        style = STATUS_STYLE.get(outcome.status, "")
        rows = f"{outcome.rows:,} rows" if outcome.rows is not None else ""
        if not self._quiet or outcome.failed:
            status = f"[{style}]{outcome.status}[/]"
            stderr.print(
                f"{outcome.taxi} {outcome.month}: {status} {rows} in {outcome.seconds:.1f}s", highlight=False
            )
        if outcome.failed:
            stderr.print(f"  {outcome.message}", style="red", highlight=False, markup=False)
        assert self._months is not None
        self._progress.advance(self._months)


PLAN_STYLE = {"load": "green", "retry": "yellow", "reload": "yellow", "check": "cyan", "skip": "dim"}


def print_plan(plan: list[MonthPlan]) -> None:
    table = Table(title="plan", title_justify="left")
    for column in ("taxi", "month", "action", "why"):
        table.add_column(column)
    for decided in plan:
        style = PLAN_STYLE.get(decided.action, "")
        table.add_row(decided.spec.name, str(decided.month), f"[{style}]{decided.action}[/]", decided.reason)
    stdout.print(table)


def print_summary(result: RunResult | None) -> None:
    if result is None:
        return
    if result.outcomes:
        table = Table(title="runner summary", title_justify="left")
        for column, justify in (
            ("taxi", "left"),
            ("month", "left"),
            ("status", "left"),
            ("rows", "right"),
            ("seconds", "right"),
            ("note", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for o in result.outcomes:
            table.add_row(
                o.taxi,
                str(o.month),
                f"[{STATUS_STYLE.get(o.status, '')}]{o.status}[/]",
                f"{o.rows:,}" if o.rows is not None else "",
                f"{o.seconds:.1f}",
                (o.message.splitlines() or [""])[0][:120],
            )
        stdout.print(table)
    if result.models_months:
        total = result.months_seconds + result.models_seconds
        share = f" ({result.models_seconds / total:.0%} of the run)" if total else ""
        stdout.print(
            f"months {result.months_seconds:.1f} s; models {result.models_seconds:.1f} s{share},"
            f" built for {', '.join(result.models_months)}",
            highlight=False,
        )
    if result.downstream_error:
        stderr.print(f"[red]downstream models failed:[/] {result.downstream_error}", highlight=False)


def print_status(project: Project, states: list[dict[str, Any]], as_json: bool = False) -> None:
    if as_json:
        for state in states:
            row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in state.items()}
            row["file_month"] = str(state["file_month"])[:7]
            sys.stdout.write(json.dumps(row) + "\n")
        return
    by_cell = {(s["taxi"], f"{s['file_month']:%Y-%m}"): s for s in states}
    table = Table(
        title="loaded months",
        title_justify="left",
    )
    table.add_column("month")
    taxis = sorted(project.taxis)
    for taxi in taxis:
        table.add_column(taxi, justify="right")
    for month in project.months:
        cells = []
        for taxi in taxis:
            state = by_cell.get((taxi, str(month)))
            if state is None:
                cells.append("[dim]·[/]")
                continue
            if state["action"] == "removed":
                cells.append("[dim]removed[/]")
                continue
            rows = f"{state['rows_loaded']:,}" if state["rows_loaded"] is not None else "-"
            flag = (
                ""
                if state["state"] == "succeeded"
                else f" [{STATUS_STYLE[state['state']]}]{state['state']}[/]"
            )
            if state.get("models") == "behind":
                flag += " [yellow]models behind[/]"
            cells.append(f"{rows}{flag}")
        table.add_row(str(month), *cells)
    stdout.print(table)
    stdout.print(
        "[dim]rows in the main table; a state is shown when a month's latest load did not succeed;"
        " 'models behind': the analytics models do not reflect the month's rows yet (the next run"
        " rebuilds them); removed: `runner remove` took the month out; · never loaded[/]"
    )
    for state in states:
        which = f"{state['taxi']} {state['file_month']:%Y-%m}"
        if state["state"] == "failed":
            stdout.print(f"[red]{which} failed:[/] {state['error']}", highlight=False)
        elif state["state"] == "interrupted":
            stdout.print(
                f"[red]{which} interrupted:[/] its loader stopped before"
                " finishing (killed, or its server session ended); the next run loads the month again",
                highlight=False,
            )
