"""`runner db`: the embedded PostgreSQL (runner/embedded.py), used when PGHOST is not set."""

from __future__ import annotations

import typer

from runner.cli.common import EXIT_OK, YesOption, fail

app = typer.Typer(
    help="The embedded PostgreSQL the runner uses when PGHOST is not set.", no_args_is_help=True
)


@app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (initialising it on first use)."""
    from runner.embedded import EmbeddedError, EmbeddedPostgres

    server = EmbeddedPostgres()
    try:
        started = server.start()
    except EmbeddedError as error:
        fail(str(error))
    typer.echo(f"{'started' if started else 'already running'}: {server.url()}")


@app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    from runner.embedded import EmbeddedPostgres

    typer.echo("stopped" if EmbeddedPostgres().stop() else "not running")


@app.command("status")
def db_status() -> None:
    """Is the embedded PostgreSQL running, where, and on which port."""
    from runner.embedded import EmbeddedPostgres

    state = EmbeddedPostgres().status()
    typer.echo(
        f"{'running' if state.running else 'stopped'} (pid {state.pid or '-'}), port {state.port}, "
        f"data {state.data_dir}{'' if state.initialized else ' (not initialised)'}"
        f"{f', PostgreSQL {state.version}' if state.version else ''}"
    )
    raise typer.Exit(EXIT_OK if state.running else 3)


@app.command("url")
def db_url() -> None:
    """Print the embedded server's connection URL (for psql or a notebook); it names the password file."""
    from runner.embedded import EmbeddedPostgres

    typer.echo(EmbeddedPostgres().url())


@app.command("env")
def db_env() -> None:
    """Print the PG* exports that point psql and dbt alone at the embedded server: eval "$(runner db env)"."""
    import shlex

    from runner.embedded import EmbeddedPostgres

    for name, value in EmbeddedPostgres().env().items():
        typer.echo(f"export {name}={shlex.quote(value)}")


@app.command("reset")
def db_reset(yes: YesOption = False) -> None:
    """Stop the embedded PostgreSQL and delete all its data."""
    from runner.embedded import EmbeddedPostgres

    server = EmbeddedPostgres()
    if not yes:
        typer.confirm(f"Delete every table in {server.status().data_dir}?", abort=True)
    server.reset()
    typer.echo("reset: the next start initialises an empty server")
