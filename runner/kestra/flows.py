"""Kestra flows built from the project: `runner kestra emit --out kestra/flows`.

Pure functions return each flow as a dict; `emit` writes them as YAML, deterministically (no
timestamps), so the committed files can be compared with a fresh emit. Taxis, CSV columns and
landing table names come from the dbt project (runner/project.py); crons, time zone and month
semantics from schedules.yml (runner/schedule.py). No credentials: connection settings come from
`kv()`, passwords and keys from `secret()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.project import Month, Project, TaxiSpec, load_project

NAMESPACE = "nyc_taxi"
PROFILE = "nyc_taxi"  # dbt_project.yml `profile:`
SOURCE_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"  # runner/source.py

# Pinned images: dbt-core 1.11 (dbt_project.yml require-dbt-version) installed at fixed versions.
PYTHON_IMAGE = "python:3.12.7-slim"
DBT_POSTGRES_PIP = "pip install --no-cache-dir dbt-core==1.11.16 dbt-postgres==1.11.0"
DBT_BIGQUERY_PIP = "pip install --no-cache-dir dbt-core==1.11.16 dbt-bigquery==1.12.1"

# The dbt project reaches the task containers as namespace files (README "Kestra").
PROJECT_FILES = [
    "dbt_project.yml",
    "models/**",
    "macros/**",
    "seeds/**",
    "tests/dbt/**",
    "analyses/**",
]

PG_URL = "jdbc:postgresql://{{ kv('TAXI_PG_HOST') }}:{{ kv('TAXI_PG_PORT') }}/{{ kv('TAXI_PG_DB') }}"
PG_USER = "{{ kv('TAXI_PG_USER') }}"
PG_PASSWORD = "{{ secret('TAXI_PG_PASSWORD') }}"
PG_CONNECTION = {"url": PG_URL, "username": PG_USER, "password": PG_PASSWORD}  # the JDBC tasks' properties
TAXI_SCHEMA = "{{ kv('TAXI_SCHEMA') }}"

YEAR = "{{ render(vars.year) }}"
MONTH = "{{ render(vars.mm) }}"
TASK = "io.kestra.plugin"


def _profiles_postgres() -> str:
    return (
        f"{PROFILE}:\n"
        "  target: pg\n"
        "  outputs:\n"
        "    pg:\n"
        "      type: postgres\n"
        "      host: \"{{ kv('TAXI_PG_HOST') }}\"\n"
        "      port: {{ kv('TAXI_PG_PORT') }}\n"
        f'      user: "{PG_USER}"\n'
        f'      password: "{PG_PASSWORD}"\n'
        "      dbname: \"{{ kv('TAXI_PG_DB') }}\"\n"
        f'      schema: "{TAXI_SCHEMA}"\n'
        "      threads: 4\n"
        "      connect_timeout: 10\n"
    )


def _profiles_bigquery() -> str:
    return (
        f"{PROFILE}:\n"
        "  target: bq\n"
        "  outputs:\n"
        "    bq:\n"
        "      type: bigquery\n"
        "      method: service-account\n"
        "      keyfile: service-account.json\n"
        "      project: \"{{ kv('GCP_PROJECT') }}\"\n"
        "      dataset: \"{{ kv('BQ_DATASET') }}\"\n"
        "      location: \"{{ kv('GCP_LOCATION') }}\"\n"
        "      threads: 4\n"
        "      priority: interactive\n"
        "      job_retries: 1\n"
    )


def _dbt_task(task_id: str, command: str, *, bigquery: bool = False, **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": task_id,
        "type": f"{TASK}.dbt.cli.DbtCLI",
        "containerImage": PYTHON_IMAGE,
        "taskRunner": {"type": f"{TASK}.scripts.runner.docker.Docker"},
        "beforeCommands": [DBT_BIGQUERY_PIP if bigquery else DBT_POSTGRES_PIP],
        "namespaceFiles": {"enabled": True, "include": list(PROJECT_FILES)},
        "projectDir": ".",
        "profiles": _profiles_bigquery() if bigquery else _profiles_postgres(),
        "commands": [command],
    }
    if bigquery:
        task["inputFiles"] = {"service-account.json": "{{ secret('GCP_SERVICE_ACCOUNT') }}"}
        task["env"] = {"GCS_BUCKET": "{{ kv('GCS_BUCKET') }}", "DBT_TARGET": "bq"}
    task.update(extra)
    return task


def _dbt_vars() -> str:
    return '{taxi: {{ inputs.taxi }}, month: "{{ render(vars.month) }}", load_id: "{{ execution.id }}"}'


def landing_table_template(spec: TaxiSpec, project: Project) -> str:
    """`<schema>_landing.<taxi>_tripdata_<YYYY>_<MM>` with the month from the inputs."""
    sample = spec.landing_table(Month(1999, 12))
    assert sample.endswith("_1999_12")
    table = sample.removesuffix("_1999_12") + f"_{YEAR}_{MONTH}"
    return f"{TAXI_SCHEMA}{project.landing_schema_suffix}.{table}"


def _copy_in(spec: TaxiSpec, project: Project) -> dict[str, Any]:
    return {
        "id": f"copy_in_{spec.name}",
        "type": f"{TASK}.jdbc.postgresql.CopyIn",
        **PG_CONNECTION,
        "from": "{{ outputs.extract.outputFiles[render(vars.file)] }}",
        "table": landing_table_template(spec, project),
        "columns": list(spec.columns),
        "format": "CSV",
        "header": True,
    }


def _truncate(spec: TaxiSpec, project: Project) -> dict[str, Any]:
    return {
        "id": f"truncate_{spec.name}",
        "type": f"{TASK}.jdbc.postgresql.Queries",
        **PG_CONNECTION,
        "sql": f"TRUNCATE {landing_table_template(spec, project)}",
    }


def _inputs(project: Project) -> list[dict[str, Any]]:
    years = sorted({m.year for m in project.months})
    return [
        {"id": "taxi", "type": "SELECT", "displayName": "Taxi type", "values": sorted(project.taxis)},
        {
            "id": "year",
            "type": "SELECT",
            "displayName": "Year",
            "values": [str(y) for y in years],
            "allowCustomValue": True,
        },
        {
            "id": "month",
            "type": "SELECT",
            "displayName": "Month",
            "values": [f"{m:02d}" for m in range(1, 13)],
        },
    ]


def postgres_taxi(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """One month into Postgres: download, begin_load, COPY into the landing table, dbt build."""
    project = project or load_project()
    return {
        "id": "postgres_taxi",
        "namespace": namespace,
        "description": "Load one taxi month into Postgres through the nyc_taxi dbt project "
        "(README: How a month is loaded (Postgres), Kestra). Emitted by `runner kestra emit`.",
        "inputs": _inputs(project),
        "variables": {
            "year": "{{ inputs.year }}",
            "mm": "{{ inputs.month }}",
            "month": f"{YEAR}-{MONTH}",
            "file": "{{ inputs.taxi }}_tripdata_" + f"{YEAR}-{MONTH}.csv",
            "url": SOURCE_URL + "/{{ inputs.taxi }}/{{ inputs.taxi }}_tripdata_" + f"{YEAR}-{MONTH}.csv.gz",
        },
        "concurrency": {"limit": 1, "behavior": "QUEUE"},
        "tasks": [
            {
                "id": "set_label",
                "type": f"{TASK}.core.execution.Labels",
                "labels": {"file": "{{ render(vars.file) }}", "taxi": "{{ inputs.taxi }}"},
            },
            {
                "id": "extract",
                "type": f"{TASK}.scripts.shell.Commands",
                "taskRunner": {"type": f"{TASK}.core.runner.Process"},
                "interpreter": ["/bin/bash", "-c"],
                "outputFiles": ["*.csv"],
                "commands": [
                    "set -euo pipefail\n"
                    "curl --fail --silent --show-error --location --retry 3 "
                    '--output "{{ render(vars.file) }}.gz" "{{ render(vars.url) }}"\n'
                    'gunzip --stdout "{{ render(vars.file) }}.gz" > "{{ render(vars.file) }}"\n'
                    'rm -f "{{ render(vars.file) }}.gz"\n'
                ],
            },
            _dbt_task(
                "begin_load",
                f"dbt run-operation tripdata_begin_load --args '{_dbt_vars()}'",
            ),
            {
                "id": "copy_in",
                "type": f"{TASK}.core.flow.Switch",
                "value": "{{ inputs.taxi }}",
                "cases": {
                    name: [_truncate(spec, project), _copy_in(spec, project)]
                    for name, spec in sorted(project.taxis.items())
                },
            },
            _dbt_task(
                "dbt_build",
                "dbt build --select {{ inputs.taxi }}_tripdata " + f"--vars '{_dbt_vars()}'",
            ),
            {"id": "purge_files", "type": f"{TASK}.core.storage.PurgeCurrentExecutionFiles"},
        ],
    }


def _schedule_config(project: Project) -> Any:
    from runner.schedule import load_config

    return load_config(project.root / "schedules.yml", tuple(project.taxis))


def _tick_date(pattern: str) -> str:
    """The file month of a Schedule tick (trigger.date): the tick's month or the one before."""
    return (
        "{% set d = inputs.tick_month == 'previous' ? (trigger.date | dateAdd(-1, 'MONTHS'))"
        " : trigger.date %}" + f"{{{{ d | date('{pattern}') }}}}"
    )


def postgres_taxi_scheduled(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """postgres_taxi with one Schedule trigger per schedules.yml trigger; the month comes from the tick."""
    project = project or load_project()
    config = _schedule_config(project)
    flow = postgres_taxi(namespace, project)
    flow["id"] = "postgres_taxi_scheduled"
    flow["description"] = (
        "postgres_taxi on the schedules.yml crons: loads the month of each tick (tick_month: the "
        "month before the tick, or the tick's own); backfill a range from the trigger's Backfill "
        "in the UI (README: Kestra). Emitted by `runner kestra emit`."
    )
    flow["inputs"] = [
        flow["inputs"][0],
        {
            "id": "tick_month",
            "type": "SELECT",
            "displayName": "File month relative to the tick",
            "values": ["previous", "current"],
            "defaults": "previous",
        },
    ]
    flow["variables"]["year"] = _tick_date("yyyy")
    flow["variables"]["mm"] = _tick_date("MM")
    flow["triggers"] = [
        {
            "id": f"{trigger.name}_schedule",
            "type": f"{TASK}.core.trigger.Schedule",
            "cron": trigger.cron,
            "timezone": str(config.timezone),
            "recoverMissedSchedules": config.recover_missed.upper(),
            "inputs": {"taxi": trigger.taxi, "tick_month": trigger.month},
        }
        for trigger in config.triggers
    ]
    return flow


def dbt_postgres(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return {
        "id": "dbt_postgres",
        "namespace": namespace,
        "description": "dbt build of the nyc_taxi project on Postgres. Emitted by `runner kestra emit`.",
        "tasks": [
            _dbt_task(
                "dbt_build",
                "dbt build",
                storeManifest={"key": "manifest_postgres.json", "namespace": "{{ flow.namespace }}"},
            )
        ],
    }


def dbt_bigquery(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return {
        "id": "dbt_bigquery",
        "namespace": namespace,
        "description": "dbt build of the nyc_taxi project on BigQuery. Emitted by `runner kestra emit`.",
        "tasks": [
            _dbt_task(
                "dbt_build",
                "dbt build",
                bigquery=True,
                storeManifest={"key": "manifest_bigquery.json", "namespace": "{{ flow.namespace }}"},
            )
        ],
    }


FLOWS = (postgres_taxi, postgres_taxi_scheduled, dbt_postgres, dbt_bigquery)


def build_flows(namespace: str = NAMESPACE, project: Project | None = None) -> list[dict[str, Any]]:
    project = project or load_project()
    return [build(namespace, project) for build in FLOWS]


def _dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: every value spelled out
            return True

    def str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        # digit-only strings ('08', '2019') quoted: a YAML 1.2 reader would read 08 as a number
        style = "'" if data.isdigit() else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_representer)
    return Dumper


def emit(out_dir: str | Path, namespace: str = NAMESPACE) -> list[Path]:
    """Write one `<flow id>.yml` per flow into out_dir; returns the paths written."""
    import yaml

    dumper = _dumper()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for flow in build_flows(namespace):
        path = out / f"{flow['id']}.yml"
        text = yaml.dump(flow, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
