"""`runner kestra`: Kestra flow files, emitted from the project and checked offline (runner/kestra/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import fail
from runner.kestra import NAMESPACE

app = typer.Typer(help="Kestra flow files: offline checks against the task catalogue.", no_args_is_help=True)


@app.command("validate")
def kestra_validate(
    paths: Annotated[list[Path], typer.Argument(help="Flow files or folders of *.yml/*.yaml.")],
) -> None:
    """Check Kestra flow YAML offline: types, properties, ids, expressions, subflow inputs, 2.0 removals."""
    from runner.kestra.validate import validate_paths

    try:
        results = validate_paths(paths)
    except FileNotFoundError as missing:
        fail(f"no such file or folder: {missing}")
    if not results:
        fail("no *.yml/*.yaml flow files found")
    count = 0
    for problems in results.values():
        for problem in problems:
            typer.echo(str(problem))
            count += 1
    typer.echo(f"{count} problem(s) in {len(results)} flow file(s)")
    if count:
        raise typer.Exit(1)


@app.command("emit")
def kestra_emit(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the flow files into.")] = Path(
        "kestra/flows"
    ),
    namespace: Annotated[str, typer.Option("--namespace", help="Kestra namespace of the flows.")] = NAMESPACE,
) -> None:
    """Write the project's Kestra flows (one YAML file each) built from the dbt project and schedules.yml."""
    from runner.kestra.flows import emit

    try:
        paths = emit(out, namespace)
    except ValueError as error:
        fail(str(error))
    for path in paths:
        typer.echo(str(path))
