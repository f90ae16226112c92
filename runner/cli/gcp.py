"""`runner gcp`: the BigQuery target's bucket and datasets (runner/bigquery.py)."""

from __future__ import annotations

import typer

from runner.cli.common import EXIT_MONTH_FAILED, Target, fail, load_project, open_warehouse

app = typer.Typer(
    help="The BigQuery target's bucket and datasets (settings: GCP_PROJECT, GCS_BUCKET, BQ_DATASET, "
    "GCP_LOCATION, GOOGLE_APPLICATION_CREDENTIALS).",
    no_args_is_help=True,
)


@app.command("setup")
def gcp_setup() -> None:
    """Create the bucket and the datasets (main and landing) where missing; existing ones are left alone."""
    project = load_project(Target.bq)  # first: it says when the BigQuery extra or a setting is missing
    warehouse = open_warehouse(project, Target.bq)
    from google.api_core.exceptions import GoogleAPIError

    from runner.bigquery import ConfigError

    try:
        for line in warehouse.setup():
            typer.echo(line)
    except ConfigError as error:
        fail(str(error))
    except GoogleAPIError as error:
        fail(f"set-up failed: {error}", EXIT_MONTH_FAILED)
    finally:
        warehouse.close()
