"""`runner`: the command line (typer). The commands live in runner/cli/loads.py for now."""

from runner.cli.loads import app, main

__all__ = ["app", "main"]
