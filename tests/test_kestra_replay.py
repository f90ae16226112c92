"""The month flows, replayed from their own YAML on the test warehouses, load a month as the runner does.

No Kestra runs here. Each step is played as its task would: the DbtCLI commands are rendered
(tests/kestra_render.py), split as the task's shell would and run by dbt with the profile the task
renders; the Queries task's SQL runs as it is; CopyIn runs the COPY its properties describe (PgJDBC's
CopyManager, `COPY <table> (<columns>) FROM STDIN WITH (FORMAT CSV, HEADER true)`); the download
script runs with bash, fetching the bundled file from the test's HTTP server. gcp_taxi runs on the
BigQuery and GCS emulators, each dbt command parsed afresh as DbtCLI's own process would. What this
checks: the flows' commands, quoting, profile, table names and columns work with this dbt project,
and load what the runner loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BUNDLED, dbt_cli
from flow_tree import tasks
from kestra_render import render
from reference import expected_month, read_rows, write_month
from test_dbt_contract import ledger_rows, month_ids

from runner.dbt import Dbt, DbtError
from runner.kestra.flows import dbt_postgres, gcp_taxi, postgres_taxi
from runner.project import load_project
from runner.source import DEFAULT_SOURCE as SOURCE_URL

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
EXECUTION_ID = "5Ha9pTPfYQNGMp1IMdkA0z"  # Kestra's ids are base62 uuids


def _context(
    env: dict[str, str], flow: dict, execution: str = EXECUTION_ID, source: str = "", **inputs: str
) -> dict:
    settings = {
        "TAXI_PG_HOST": env["PGHOST"],
        "TAXI_PG_PORT": env["PGPORT"],
        "TAXI_PG_DB": env["PGDATABASE"],
        "TAXI_PG_USER": env["PGUSER"],
        "TAXI_SCHEMA": "nyc_taxi",
        "TAXI_PG_DOCKER_NETWORK": "nyc_taxi",
    }
    secrets = {"TAXI_PG_PASSWORD": env.get("PGPASSWORD", "")}
    return {
        "inputs": inputs,
        # the download comes from the test's HTTP server instead of the public release
        "vars": {k: v.replace(SOURCE_URL, source) for k, v in flow.get("variables", {}).items()},
        "flow": {"namespace": flow["namespace"], "id": flow["id"]},
        "execution": {"id": execution},
        "kv": settings.__getitem__,
        "secret": secrets.__getitem__,
    }


def _dbt_step(task: dict, context: dict, profiles_dir: Path) -> Dbt:
    """dbt with the profile the task renders; returns it after running the task's commands."""
    profiles = yaml.safe_load(render(task["profiles"], context))
    (profiles_dir / "profiles.yml").write_text(yaml.safe_dump(profiles))
    dbt = Dbt(project_dir=load_project().root, profiles_dir=profiles_dir)
    for command in task["commands"]:
        words = shlex.split(render(command, context))
        assert words[0] == "dbt"
        dbt.invoke(words[1:])
    return dbt


def _copy_in(task: dict, context: dict, connection) -> None:
    assert (task["format"], task["header"]) == ("CSV", True)
    table = render(task["table"], context)
    columns = ", ".join(task["columns"])
    with connection.cursor() as cursor, open(render(task["from"], context), "rb") as csv:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT CSV, HEADER true)", csv)
    connection.commit()


class StepFailed(Exception):
    pass


def _extract(task: dict, context: dict, workdir: Path) -> dict:
    """Run the task's own script with bash in a fresh folder, as the Process runner does; its outputs."""
    workdir.mkdir(parents=True)
    script = render(task["commands"][0], context)
    done = subprocess.run([*task["interpreter"], script], cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed(f"extract: exit {done.returncode}: {done.stderr.strip()}")
    variables = {}
    for line in done.stdout.splitlines():  # Kestra's script-output protocol: ::{"outputs": {..}}::
        if line.startswith("::{") and line.endswith("}::"):
            variables.update(json.loads(line[2:-2])["outputs"])
    (pattern,) = task["outputFiles"]
    return {"vars": variables, "outputFiles": {f.name: str(f) for f in workdir.glob(pattern)}}


def replay_month(flow: dict, context: dict, pg_server, tmp_path: Path) -> None:
    """One execution of postgres_taxi: its tasks in order, then its error handler if one failed."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    steps = {t["id"]: t for t in flow["tasks"]}
    assert list(steps) == ["set_label", "extract", "begin_load", "copy_in", "dbt_build", "purge_files"]
    try:
        context["outputs"] = {"extract": _extract(steps["extract"], context, tmp_path / "work")}
        _dbt_step(steps["begin_load"], context, tmp_path)
        truncate, copy = steps["copy_in"]["cases"][render(steps["copy_in"]["value"], context)]
        with pg_server.connect() as connection:
            with connection.cursor() as cursor:
                cursor.execute(render(truncate["sql"], context))
            connection.commit()
            _copy_in(copy, context, connection)
        _dbt_step(steps["dbt_build"], context, tmp_path)
    except (StepFailed, DbtError):
        for task in flow["errors"]:
            _dbt_step(task, context, tmp_path)
        raise


def _green_2020_10(env, flow, http, execution=EXECUTION_ID) -> dict:
    return _context(env, flow, execution, http.url, taxi="green", year="2020", month="10")


def test_postgres_taxi_loads_a_month_as_the_runner_does(db, pg_server, warehouse_env, http, tmp_path):
    http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()
    flow = postgres_taxi()
    replay_month(flow, _green_2020_10(warehouse_env, flow, http), pg_server, tmp_path / "first")
    expected = expected_month(GREEN_2020_10, "2020-10")
    ids = month_ids(db)
    assert set(ids) == set(expected.kept) and set(ids.values()) == {EXECUTION_ID}
    (load,) = ledger_rows(db)
    assert (load["load_id"], load["state"], load["action"]) == (EXECUTION_ID, "succeeded", "loaded")
    assert (load["rows_in_file"], load["rows_loaded"]) == (expected.rows_in_file, expected.rows_loaded)
    # the file on record as the runner records it
    assert load["checksum"] == hashlib.sha256(GREEN_2020_10.read_bytes()).hexdigest()
    assert load["bytes"] == GREEN_2020_10.stat().st_size
    assert load["filename"] == "green_tripdata_2020-10.csv.gz" and load["loaded_by"] == "kestra"
    assert load["source_url"] == f"{http.url}/green/green_tripdata_2020-10.csv.gz"

    # a second execution on the same file changes nothing: same rows, same load ids
    second = "7Qb2nWm0XcVd1LpRtYs9eK"
    replay_month(flow, _green_2020_10(warehouse_env, flow, http, second), pg_server, tmp_path / "second")
    assert month_ids(db) == ids
    assert [(r["load_id"], r["state"], r["action"]) for r in ledger_rows(db)][-1] == (
        second,
        "succeeded",
        "unchanged",
    )


@pytest.mark.parametrize("fault", ["missing", "truncated"])
def test_a_failed_execution_is_on_the_ledger_and_changes_nothing(
    db, pg_server, warehouse_env, http, tmp_path, fault
):
    if fault == "truncated":  # the whole body arrives, but it is half a gzip file
        http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()[:50_000]
    flow = postgres_taxi()
    with pytest.raises(StepFailed, match="extract: exit"):
        replay_month(flow, _green_2020_10(warehouse_env, flow, http), pg_server, tmp_path)
    (load,) = ledger_rows(db)
    assert (load["load_id"], load["state"], load["loaded_by"]) == (EXECUTION_ID, "failed", "kestra")
    assert EXECUTION_ID in load["error"] and load["filename"] == "green_tripdata_2020-10.csv.gz"
    assert month_ids(db) == {}


def test_dbt_postgres_builds_the_models_with_its_profile(db, pg_server, warehouse_env, http, tmp_path):
    http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()
    month_flow = postgres_taxi()
    replay_month(month_flow, _green_2020_10(warehouse_env, month_flow, http), pg_server, tmp_path / "month")
    flow = dbt_postgres()
    (task,) = [t for t in tasks(flow) if t["type"].endswith("DbtCLI")]
    _dbt_step(task, _context(warehouse_env, flow), tmp_path)
    with db.cursor() as cursor:
        cursor.execute(
            "select count(*) from nyc_taxi_core.fact_trips where service_type = 'Green'"
            " and pickup_datetime >= '2020-10-01' and pickup_datetime < '2020-11-01'"
        )
        trips = cursor.fetchone()[0]
    header, _ = read_rows(GREEN_2020_10)
    pickup = header.index("lpep_pickup_datetime")
    kept = expected_month(GREEN_2020_10, "2020-10").kept.values()
    assert trips == sum(1 for row in kept if row[pickup].startswith("2020-10")) == 95_111


# --- gcp_taxi on the BigQuery and GCS emulators ---------------------------------------------------


def _gcp_context(flow: dict, http, execution: str = EXECUTION_ID) -> dict:
    settings = {"GCP_PROJECT": os.environ["GCP_PROJECT"], "GCS_BUCKET": os.environ["GCS_BUCKET"]}
    return {
        "inputs": {"taxi": "green", "year": "2020", "month": "10"},
        "vars": {k: v.replace(SOURCE_URL, http.url) for k, v in flow.get("variables", {}).items()},
        "flow": {"namespace": flow["namespace"], "id": flow["id"]},
        "execution": {"id": execution},
        "kv": settings.__getitem__,
    }


def _dbt_cli_step(task: dict, context: dict, bq) -> None:
    """Each command as DbtCLI runs it, a dbt process of its own (parsed with its vars), with the
    project's bq profile on the emulators (the task's service-account profile needs Google)."""
    assert render(task["env"]["GCS_BUCKET"], context) == bq.config.bucket
    for command in task["commands"]:
        words = shlex.split(render(command, context))
        assert words[0] == "dbt"
        result = dbt_cli(words[1:])
        if not result.success:
            raise DbtError(result.message)
        if words[1:3] == ["run-operation", "stage_external_sources"]:
            _read_as_the_external_table_would(bq, context)


def _read_as_the_external_table_would(bq, context: dict) -> None:
    """The emulator makes the staged external table an empty native one: a load job from the same
    object fills it with the rows BigQuery would read through it (the DDL: test_bigquery_sql.py)."""
    from google.cloud import bigquery

    landing = f"{bq.config.project}.{bq.landing_dataset}.green_tripdata_2020_10"
    uri = render(context["vars"]["gcs_uri"], context)
    config = bigquery.LoadJobConfig(
        source_format="CSV", skip_leading_rows=1, schema=bq.bigquery.get_table(landing).schema
    )
    bq.bigquery.load_table_from_uri(uri, landing, job_config=config).result()


def replay_gcp_month(flow: dict, context: dict, bq, tmp_path: Path) -> None:
    """One execution of gcp_taxi: its tasks in order, then its error handler if one failed."""
    steps = {t["id"]: t for t in flow["tasks"]}
    assert list(steps) == ["set_label", "extract", "begin_load", "upload", "dbt_build", "purge_files"]
    try:
        context["outputs"] = {"extract": _extract(steps["extract"], context, tmp_path / "work")}
        _dbt_cli_step(steps["begin_load"], context, bq)
        upload = steps["upload"]
        bucket, name = render(upload["to"], context).removeprefix("gs://").split("/", 1)
        bq.storage.bucket(bucket).blob(name).upload_from_filename(render(upload["from"], context))
        _dbt_cli_step(steps["dbt_build"], context, bq)
    except (StepFailed, DbtError):
        for task in flow["errors"]:
            _dbt_cli_step(task, context, bq)
        raise


def _bq_ledger(bq) -> list[tuple]:
    return [
        tuple(row.values())
        for row in bq.bigquery.query(
            "select load_id, state, action, loaded_by, checksum, bytes, rows_loaded, error"
            " from nyc_taxi.load_ledger order by started_at"
        ).result()
    ]


def test_gcp_taxi_loads_a_month_as_the_runner_does(bq, http, tmp_path):
    """begin_load (the file's checksum on record), the upload, stage_external_sources, dbt build."""
    http.files["green/green_tripdata_2020-10.csv.gz"] = GREEN_2020_10.read_bytes()
    flow = gcp_taxi()
    replay_gcp_month(flow, _gcp_context(flow, http), bq, tmp_path / "first")

    expected = expected_month(GREEN_2020_10, "2020-10")
    ids = bq.bigquery.query(
        "select unique_row_id, load_id from nyc_taxi.green_tripdata where file_month = '2020-10-01'"
    ).result()
    assert {row[0]: row[1] for row in ids} == dict.fromkeys(expected.kept, EXECUTION_ID)
    checksum = hashlib.sha256(GREEN_2020_10.read_bytes()).hexdigest()
    size = GREEN_2020_10.stat().st_size
    record = (EXECUTION_ID, "succeeded", "loaded", "kestra", checksum, size, expected.rows_loaded, None)
    assert _bq_ledger(bq) == [record]
    # merged, then dropped
    assert list(bq.bigquery.list_tables(f"{bq.config.project}.{bq.landing_dataset}")) == []


def test_a_failed_gcp_execution_is_on_the_ledger_and_changes_nothing(bq, http, tmp_path):
    """A file of another month fails the merge's checks: the error handler records the failure."""
    header, rows = read_rows(GREEN_2020_10)
    wrong = write_month(tmp_path / "files", "green", "2019-03", header, rows[:500])
    http.files["green/green_tripdata_2020-10.csv.gz"] = wrong.read_bytes()
    flow = gcp_taxi()
    with pytest.raises(DbtError, match="green 2020-10"):
        replay_gcp_month(flow, _gcp_context(flow, http), bq, tmp_path / "run")

    [(load_id, state, _, loaded_by, *_, error)] = _bq_ledger(bq)
    assert (load_id, state, loaded_by) == (EXECUTION_ID, "failed", "kestra")
    assert "green 2020-10" in error
    count = bq.bigquery.query("select count(*) from nyc_taxi.green_tripdata").result()
    assert [tuple(row.values()) for row in count] == [(0,)]
