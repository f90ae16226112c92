"""`runner cache`: the download cache (runner/source.py)."""

from __future__ import annotations

import typer

from runner.cli.common import CacheOption, fail, load_project

app = typer.Typer(help="The download cache.", no_args_is_help=True)


@app.command("clean")
def cache_clean(cache_dir: CacheOption = None) -> None:
    """Delete the files the runner downloaded into its cache, and nothing else."""
    from runner.source import SourceError, clean_cache, default_cache_dir

    folder = cache_dir or default_cache_dir()
    try:
        files, freed = clean_cache(folder, load_project().file_pattern)
    except SourceError as error:
        fail(str(error))
    typer.echo(f"removed {files} file(s), {freed / 1e6:.1f} MB, from {folder}")
