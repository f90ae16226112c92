"""`runner report`: one self-contained HTML page of the loads, their quality, the data and the timings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import Target, TargetOption, fail, load_project, open_warehouse


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    month: Annotated[
        str | None,
        typer.Option(help="The month of the top-zones chart, YYYY-MM (default: the latest loaded)."),
    ] = None,
    target: TargetOption = Target.pg,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
) -> None:
    """Write one HTML file (charts included, no network needed to view it) from the ledger and the models."""
    from runner.dbt import DbtError, dbt_for
    from runner.project import UsageError
    from runner.report import ReportError, write_report

    project = load_project(target)
    try:
        chosen = project.month(month).first_day if month else None
    except UsageError as error:
        fail(str(error))
    warehouse = open_warehouse(project, target, need_bucket=False)
    try:
        path = write_report(dbt_for(project.root, target.value), warehouse, out.resolve(), chosen)
    except (ReportError, DbtError) as error:
        fail(str(error))
    finally:
        warehouse.close()
    typer.echo(str(path))
    if open_page:
        import webbrowser

        webbrowser.open(path.as_uri())
