"""Kestra flows built from the project: `runner kestra emit --out kestra/flows`.

Pure functions return each flow as a dict; `emit` writes them as YAML, deterministically (no
timestamps), so the committed files can be compared with a fresh emit. Taxis, CSV columns and
landing table names come from the dbt project (runner/project.py); crons, time zone and month
semantics from schedules.yml (runner/schedule.py). No credentials: connection settings come from
`kv()` (set by the `postgres_kv` and `gcp_kv` flows), passwords and keys from `secret()`.
Everything here is in both Kestra 1.x and 2.0: loops are `LoopUntil` + `Subflow`, never `ForEach`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.kestra import NAMESPACE
from runner.project import Month, Project, TaxiSpec, load_project
from runner.source import DEFAULT_SOURCE

PROFILE = "nyc_taxi"  # dbt_project.yml `profile:`


# Pinned images: dbt-core 1.11 (dbt_project.yml require-dbt-version) installed at fixed versions, the ones
# the tests run (tests/test_kestra_flows.py checks them against the installed packages).
PYTHON_IMAGE = "python:3.12.7-slim"
DBT_POSTGRES_PIP = "pip install --no-cache-dir dbt-core==1.11.16 dbt-postgres==1.11.0"
DBT_BIGQUERY_PIP = "pip install --no-cache-dir dbt-core==1.11.16 dbt-bigquery==1.12.1"


PG_URL = "jdbc:postgresql://{{ kv('TAXI_PG_HOST') }}:{{ kv('TAXI_PG_PORT') }}/{{ kv('TAXI_PG_DB') }}"
PG_USER = "{{ kv('TAXI_PG_USER') }}"
PG_PASSWORD = "{{ secret('TAXI_PG_PASSWORD') }}"
PG_CONNECTION = {"url": PG_URL, "username": PG_USER, "password": PG_PASSWORD}  # the JDBC tasks' properties
TAXI_SCHEMA = "{{ kv('TAXI_SCHEMA') }}"
GCP_AUTH = {"projectId": "{{ kv('GCP_PROJECT') }}", "serviceAccount": "{{ secret('GCP_SERVICE_ACCOUNT') }}"}
COMPOSE_PROJECT_DIR = "/app/nyc-taxi"  # docker-compose.yml mounts this project there, read-only
COMPOSE_NETWORK = "nyc_taxi"  # docker-compose.yml names its network so task containers can join it

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


def _dbt_task(
    task_id: str, commands: list[str], project: Project, *, bigquery: bool = False, **extra: Any
) -> dict[str, Any]:
    runner: dict[str, Any] = {"type": f"{TASK}.scripts.runner.docker.Docker"}
    if not bigquery:  # the container joins the taxi Postgres's network (KV, set by postgres_kv)
        runner["networkMode"] = "{{ kv('TAXI_PG_DOCKER_NETWORK') }}"
    task: dict[str, Any] = {
        "id": task_id,
        "type": f"{TASK}.dbt.cli.DbtCLI",
        "containerImage": PYTHON_IMAGE,
        "taskRunner": runner,
        "beforeCommands": [DBT_BIGQUERY_PIP if bigquery else DBT_POSTGRES_PIP],
        "namespaceFiles": {"enabled": True, "include": list(project.dbt_files)},
        "projectDir": ".",
        "profiles": _profiles_bigquery() if bigquery else _profiles_postgres(),
        # packages.yml names a vendored package (a folder in the namespace files): no network needed
        "commands": ["dbt deps", *commands],
    }
    if bigquery:
        task["inputFiles"] = {"service-account.json": "{{ secret('GCP_SERVICE_ACCOUNT') }}"}
        task["env"] = {"GCS_BUCKET": "{{ kv('GCS_BUCKET') }}", "DBT_TARGET": "bq"}
    task.update(extra)
    return task


def _dbt_vars(load_id: bool, **extra: str) -> str:
    """The month's --vars / --args; load_id when the flow landed the rows itself (Postgres CopyIn).

    Values are YAML inside the shell's single quotes: only ids, names, numbers, hex and URLs go here.
    """
    items = {"taxi": "{{ inputs.taxi }}", "month": '"{{ render(vars.month) }}"'}
    if load_id:
        items["load_id"] = '"{{ execution.id }}"'
    items.update(extra)
    return "{" + ", ".join(f"{key}: {value}" for key, value in items.items()) + "}"


# The published file (the .csv.gz) as each flow names it: the Postgres flows keep it unzipped.
PUBLISHED_FILE = {False: "{{ render(vars.file) }}.gz", True: "{{ render(vars.file) }}"}


def _file_record(bigquery: bool) -> dict[str, str]:
    """The file's identity, as the runner records it: the .csv.gz as published and where it came from."""
    return {
        "filename": f'"{PUBLISHED_FILE[bigquery]}"',
        "source_url": '"{{ render(vars.url) }}"',
        "loaded_by": "kestra",
    }


def _record_failure(project: Project, *, bigquery: bool = False) -> dict[str, Any]:
    """The flow's error handler: a failed execution's load goes on the ledger as failed, as the runner's do.

    Only a running load changes; a load that failed before it was opened (the download) is recorded too.
    """
    error = '"Kestra execution {{ execution.id }} of {{ flow.namespace }}.{{ flow.id }} failed: see its logs"'
    args = _dbt_vars(load_id=True, error=error, **_file_record(bigquery))
    command = f"dbt run-operation tripdata_fail_load --args '{args}'"
    return _dbt_task("record_failure", [command], project, bigquery=bigquery)


def _begin_load(project: Project, *, bigquery: bool = False) -> dict[str, Any]:
    """Open the load in the ledger, with the file's size and sha256 (the extract task's outputs)."""
    args = _dbt_vars(
        load_id=True,
        **_file_record(bigquery),
        bytes="{{ outputs.extract.vars.bytes }}",
        checksum='"{{ outputs.extract.vars.sha256 }}"',
    )
    command = f"dbt run-operation tripdata_begin_load --args '{args}'"
    return _dbt_task("begin_load", [command], project, bigquery=bigquery)


def _file_outputs(file: str) -> str:
    """Shell lines giving the extract task its outputs: the file's sha256 and size in bytes.

    Kestra's script-output protocol; the line ends in `} }`, since a `}}` would end the expression.
    """
    return (
        f'sha256=$(sha256sum "{file}" | cut -d " " -f 1)\n'
        f'bytes=$(wc -c < "{file}")\n'
        'echo "::{\\"outputs\\": {\\"sha256\\": \\"$sha256\\", \\"bytes\\": $bytes} }::"\n'
    )


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


def _taxi_input(project: Project) -> dict[str, Any]:
    return {"id": "taxi", "type": "SELECT", "displayName": "Taxi type", "values": sorted(project.taxis)}


def _inputs(project: Project) -> list[dict[str, Any]]:
    """taxi, year and month, each from a fixed list: the values reach a shell script and SQL."""
    years = sorted({m.year for m in project.months})
    return [
        _taxi_input(project),
        {"id": "year", "type": "SELECT", "displayName": "Year", "values": [str(y) for y in years]},
        {
            "id": "month",
            "type": "SELECT",
            "displayName": "Month",
            "values": [f"{m:02d}" for m in range(1, 13)],
        },
    ]


def _month_variables(file_suffix: str, project: Project) -> dict[str, str]:
    """year and mm from the inputs (the scheduled flows take them from the tick instead).

    file: the month's file (var tripdata_file) as the flow keeps it, `.csv.gz` or unzipped `.csv`.
    """
    published = project.file_pattern.replace("{taxi}", "{{ inputs.taxi }}").replace(
        "{month}", f"{YEAR}-{MONTH}"
    )
    assert published.endswith(".csv.gz"), "the flows gunzip the published file"
    return {
        "year": "{{ inputs.year }}",
        "mm": "{{ inputs.month }}",
        "month": f"{YEAR}-{MONTH}",
        "file": published.removesuffix(".csv.gz") + file_suffix,
        "url": DEFAULT_SOURCE + "/{{ inputs.taxi }}/" + published,
    }


def _set_label() -> dict[str, Any]:
    return {
        "id": "set_label",
        "type": f"{TASK}.core.execution.Labels",
        "labels": {"file": "{{ render(vars.file) }}", "taxi": "{{ inputs.taxi }}"},
    }


def _extract(download: str, output: str, script: str) -> dict[str, Any]:
    """A shell task in the worker that downloads the month; a partial file fails it (pipefail, --fail)."""
    return {
        "id": "extract",
        "type": f"{TASK}.scripts.shell.Commands",
        "taskRunner": {"type": f"{TASK}.core.runner.Process"},
        "interpreter": ["/bin/bash", "-c"],
        "outputFiles": [output],
        "commands": [
            "set -euo pipefail\n"
            "curl --fail --silent --show-error --location --retry 3 "
            f'--output "{download}" "{{{{ render(vars.url) }}}}"\n' + script
        ],
    }


def _purge() -> dict[str, Any]:
    return {"id": "purge_files", "type": f"{TASK}.core.storage.PurgeCurrentExecutionFiles"}


def postgres_taxi(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """One month into Postgres: download, begin_load, COPY into the landing table, dbt build."""
    project = project or load_project()
    return {
        "id": "postgres_taxi",
        "namespace": namespace,
        "description": "Load one taxi month into Postgres through the nyc_taxi dbt project "
        "(README: How a month is loaded (Postgres), Kestra). Emitted by `runner kestra emit`.",
        "inputs": _inputs(project),
        "variables": _month_variables(".csv", project),
        "concurrency": {"limit": 1, "behavior": "QUEUE"},
        "tasks": [
            _set_label(),
            _extract(
                "{{ render(vars.file) }}.gz",
                "*.csv",
                _file_outputs(PUBLISHED_FILE[False])
                + 'gunzip --stdout "{{ render(vars.file) }}.gz" > "{{ render(vars.file) }}"\n'
                'rm -f "{{ render(vars.file) }}.gz"\n',
            ),
            _begin_load(project),
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
                ["dbt build --select {{ inputs.taxi }}_tripdata " + f"--vars '{_dbt_vars(load_id=True)}'"],
                project,
            ),
            _purge(),
        ],
        "errors": [_record_failure(project)],
    }


def gcp_taxi(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """One month into BigQuery: download, begin_load, upload the .csv.gz to GCS, then dbt makes the
    month's external table over it (dbt-external-tables) and merges it."""
    project = project or load_project()
    return {
        "id": "gcp_taxi",
        "namespace": namespace,
        "description": "Load one taxi month into BigQuery through the nyc_taxi dbt project: the file goes "
        "to gs://<GCS_BUCKET>/<taxi>/ as published, `dbt run-operation stage_external_sources` makes the "
        "month's external table over it and `dbt build` merges it and records it "
        "(README: BigQuery, Kestra). Emitted by `runner kestra emit`.",
        "inputs": _inputs(project),
        "variables": {
            **_month_variables(".csv.gz", project),
            "gcs_uri": "gs://{{ kv('GCS_BUCKET') }}/{{ inputs.taxi }}/" + "{{ render(vars.file) }}",
        },
        # BigQuery cancels one of two transactions that change the same table at once: one month at a time
        "concurrency": {"limit": 1, "behavior": "QUEUE"},
        "tasks": [
            _set_label(),
            _extract(
                "{{ render(vars.file) }}",
                "*.csv.gz",
                'gzip --test "{{ render(vars.file) }}"\n' + _file_outputs(PUBLISHED_FILE[True]),
            ),
            _begin_load(project, bigquery=True),
            {
                "id": "upload",
                "type": f"{TASK}.gcp.gcs.Upload",
                **GCP_AUTH,
                "from": "{{ outputs.extract.outputFiles[render(vars.file)] }}",
                "to": "{{ render(vars.gcs_uri) }}",
                "contentType": "application/gzip",
            },
            _dbt_task(
                "dbt_build",
                [
                    f"dbt run-operation stage_external_sources --vars '{_dbt_vars(load_id=False)}'",
                    "dbt build --select {{ inputs.taxi }}_tripdata " + f"--vars '{_dbt_vars(load_id=True)}'",
                ],
                project,
                bigquery=True,
            ),
            _purge(),
        ],
        "errors": [_record_failure(project, bigquery=True)],
    }


def _schedule_config(project: Project) -> Any:
    from runner.schedule import load_config

    return load_config(project.root / "schedules.yml", tuple(project.taxis))


def tick_date_expression(pattern: str, timezone: str) -> str:
    """The file month of a Schedule tick, formatted with `pattern`: the tick's month or the one before.

    The tick is first written as noon on the 15th of its month, in the schedule's time zone, so
    shifting by a month and formatting cannot land in another month whatever zone Kestra runs in.
    """
    shift = "inputs.tick_month == 'previous' ? -1 : 0"
    return (
        "{{ trigger.date | date(\"yyyy-MM-15'T'12:00:00'Z'\", timeZone='" + timezone + "')"
        f" | dateAdd({shift}, 'MONTHS') | date('{pattern}', timeZone='UTC') }}}}"
    )


def _scheduled(flow: dict[str, Any], project: Project) -> dict[str, Any]:
    """A one-month flow on the schedules.yml triggers; the month comes from the tick."""
    config = _schedule_config(project)
    timezone = str(config.timezone)
    flow["id"] += "_scheduled"
    flow["description"] = (
        f"{flow['id'].removesuffix('_scheduled')} on the schedules.yml crons: loads the month of each tick "
        "(tick_month: the month before the tick, or the tick's own); backfill a range from the trigger's "
        "Backfill in the UI (README: Kestra). Emitted by `runner kestra emit`."
    )
    flow["inputs"] = [
        _taxi_input(project),
        {
            "id": "tick_month",
            "type": "SELECT",
            "displayName": "File month relative to the tick",
            "values": ["previous", "current"],
            "defaults": "previous",
        },
    ]
    flow["variables"]["year"] = tick_date_expression("yyyy", timezone)
    flow["variables"]["mm"] = tick_date_expression("MM", timezone)
    flow["triggers"] = [
        {
            "id": f"{trigger.name}_schedule",
            "type": f"{TASK}.core.trigger.Schedule",
            "cron": trigger.cron,
            "timezone": timezone,
            "recoverMissedSchedules": config.recover_missed.upper(),
            "inputs": {"taxi": trigger.taxi, "tick_month": trigger.month},
        }
        for trigger in config.triggers
    ]
    return flow


def postgres_taxi_scheduled(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    project = project or load_project()
    return _scheduled(postgres_taxi(namespace, project), project)


def gcp_taxi_scheduled(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    project = project or load_project()
    return _scheduled(gcp_taxi(namespace, project), project)


def _backfill(month_flow: str, namespace: str, project: Project) -> dict[str, Any]:
    """Each month of a range, oldest first, one `month_flow` execution at a time (LoopUntil + Subflow)."""
    months = [str(m) for m in project.months]
    as_number = "(inputs.{} | replace({{'-': ''}}) | number)"
    return {
        "id": f"{month_flow}_backfill",
        "namespace": namespace,
        "description": f"Run {month_flow} for each month from start to end, one at a time, oldest first; "
        "stops at the first month that fails (run again from that month). Emitted by `runner kestra emit`.",
        "inputs": [
            _taxi_input(project),
            {"id": "start", "type": "SELECT", "displayName": "First month", "values": months},
            {"id": "end", "type": "SELECT", "displayName": "Last month", "values": months},
        ],
        "tasks": [
            {
                "id": "check_range",
                "type": f"{TASK}.core.execution.Fail",
                "condition": "{{ " + as_number.format("start") + " > " + as_number.format("end") + " }}",
                "errorMessage": "the range ends ({{ inputs.end }}) before it starts ({{ inputs.start }})",
            },
            {
                "id": "months",
                "type": f"{TASK}.core.flow.LoopUntil",
                # iterationCount is 1 in the first iteration; the month of iteration n is start + n - 1
                "condition": "{{ outputs.month.value == inputs.end }}",
                "checkFrequency": {"interval": "PT1S", "maxIterations": len(months)},
                "tasks": [
                    {
                        "id": "month",
                        "type": f"{TASK}.core.debug.Return",
                        "format": "{{ (inputs.start ~ '-15T12:00:00Z')"
                        " | dateAdd(outputs.months.iterationCount - 1, 'MONTHS')"
                        " | date('yyyy-MM', timeZone='UTC') }}",
                    },
                    {
                        "id": "load",
                        "type": f"{TASK}.core.flow.Subflow",
                        "namespace": "{{ flow.namespace }}",
                        "flowId": month_flow,
                        "inputs": {
                            "taxi": "{{ inputs.taxi }}",
                            "year": "{{ outputs.month.value | slice(0, 4) }}",
                            "month": "{{ outputs.month.value | slice(5, 7) }}",
                        },
                        "wait": True,
                        "transmitFailed": True,
                    },
                ],
            },
        ],
    }


def postgres_taxi_backfill(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return _backfill("postgres_taxi", namespace, project or load_project())


def gcp_taxi_backfill(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return _backfill("gcp_taxi", namespace, project or load_project())


def _kv_flow(
    flow_id: str, namespace: str, description: str, settings: list[dict[str, Any]]
) -> dict[str, Any]:
    """A flow whose inputs become KV pairs: settings are {key, input, displayName, defaults?, validator}."""
    inputs, tasks = [], []
    for item in settings:
        spec = {"id": item["input"], "type": "STRING", "displayName": item["displayName"]}
        spec.update({k: item[k] for k in ("defaults", "validator") if k in item})
        inputs.append(spec)
        tasks.append(
            {
                "id": f"set_{item['input']}",
                "type": f"{TASK}.core.kv.Set",
                "key": item["key"],
                "value": "{{ inputs." + item["input"] + " }}",
                "kvType": "STRING",
                "overwrite": True,
            }
        )
    return {
        "id": flow_id,
        "namespace": namespace,
        "description": description,
        "inputs": inputs,
        "tasks": tasks,
    }


# Values that reach SQL or a shell are checked where they are set.
IDENTIFIER = "^[a-z_][a-z0-9_]{0,62}$"
HOST = "^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$"


def postgres_kv(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return _kv_flow(
        "postgres_kv",
        namespace,
        "Connection settings of the taxi Postgres, as KV pairs the Postgres flows read; the defaults are "
        "docker-compose.yml's. The password is the secret TAXI_PG_PASSWORD, never a KV pair "
        "(README: Kestra). Emitted by `runner kestra emit`.",
        [
            {"key": "TAXI_PG_HOST", "input": "host", "displayName": "Host (as a task container sees it)",
             "defaults": "postgres", "validator": HOST},
            {"key": "TAXI_PG_PORT", "input": "port", "displayName": "Port", "defaults": "5432",
             "validator": "^[0-9]{1,5}$"},
            {"key": "TAXI_PG_DB", "input": "database", "displayName": "Database", "defaults": "nyc_taxi",
             "validator": IDENTIFIER},
            {"key": "TAXI_PG_USER", "input": "user", "displayName": "User", "defaults": "postgres",
             "validator": IDENTIFIER},
            {"key": "TAXI_SCHEMA", "input": "schema", "displayName": "Schema of the main tables",
             "defaults": "nyc_taxi", "validator": IDENTIFIER},
            {"key": "TAXI_PG_DOCKER_NETWORK", "input": "docker_network",
             "displayName": "Docker network of the dbt containers", "defaults": COMPOSE_NETWORK,
             "validator": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"},
        ],
    )  # fmt: skip


def gcp_kv(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    return _kv_flow(
        "gcp_kv",
        namespace,
        "GCP settings as KV pairs the GCP flows read (the runner's GCP_PROJECT, GCP_LOCATION, GCS_BUCKET, "
        "BQ_DATASET). The service account key is the secret GCP_SERVICE_ACCOUNT, never a KV pair "
        "(README: Kestra). Emitted by `runner kestra emit`.",
        [
            {"key": "GCP_PROJECT", "input": "project", "displayName": "GCP project id",
             "validator": "^[a-z][a-z0-9-]{4,28}[a-z0-9]$"},
            {"key": "GCP_LOCATION", "input": "location", "displayName": "Location of the bucket and datasets",
             "defaults": "US", "validator": "^[A-Za-z0-9-]{2,40}$"},
            {"key": "GCS_BUCKET", "input": "bucket", "displayName": "Bucket for the month files",
             "validator": "^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"},
            {"key": "BQ_DATASET", "input": "dataset", "displayName": "BigQuery dataset of the main tables",
             "defaults": "nyc_taxi", "validator": "^[A-Za-z_][A-Za-z0-9_]{0,1000}$"},
        ],
    )  # fmt: skip


def gcp_setup(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """The bucket and both datasets, existing ones left alone (as `runner gcp setup`)."""
    project = project or load_project()
    location = "{{ kv('GCP_LOCATION') }}"
    return {
        "id": "gcp_setup",
        "namespace": namespace,
        "description": "Create the bucket and the two BigQuery datasets (main, landing), leaving existing "
        "ones as they are, like `runner gcp setup`. Emitted by `runner kestra emit`.",
        "tasks": [
            {
                "id": "create_bucket",
                "type": f"{TASK}.gcp.gcs.CreateBucket",
                **GCP_AUTH,
                "name": "{{ kv('GCS_BUCKET') }}",
                "location": location,
                "ifExists": "SKIP",
            },
            {
                "id": "create_dataset",
                "type": f"{TASK}.gcp.bigquery.CreateDataset",
                **GCP_AUTH,
                "name": "{{ kv('BQ_DATASET') }}",
                "location": location,
                "ifExists": "SKIP",
            },
            {
                "id": "create_landing_dataset",
                "type": f"{TASK}.gcp.bigquery.CreateDataset",
                **GCP_AUTH,
                "name": "{{ kv('BQ_DATASET') }}" + project.landing_schema_suffix,
                "location": location,
                "defaultTableLifetime": project.landing_expiry_days * 24 * 3600 * 1000,
                "ifExists": "SKIP",
            },
        ],
    }


def project_files(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    """Copy the dbt project from the compose mount into the namespace files the dbt tasks read."""
    project = project or load_project()
    patterns = [f"glob:{p}" for p in project.dbt_files]
    folders = " ".join(p.removesuffix("/**") for p in project.dbt_files)
    return {
        "id": "project_files",
        "namespace": namespace,
        "description": "Replace this namespace's copy of the nyc_taxi dbt project (the files the dbt tasks "
        "read) with the project mounted at project_dir; run it after `docker compose up` and after each "
        "change to the project. Emitted by `runner kestra emit`.",
        "inputs": [
            {
                "id": "project_dir",
                "type": "STRING",
                "displayName": "The dbt project, as the Kestra server sees it",
                "defaults": COMPOSE_PROJECT_DIR,
                "validator": "^/[A-Za-z0-9._/-]+$",
            }
        ],
        "tasks": [
            {
                "id": "workdir",
                "type": f"{TASK}.core.flow.WorkingDirectory",
                "tasks": [
                    {
                        "id": "copy_project",
                        "type": f"{TASK}.scripts.shell.Commands",
                        "taskRunner": {"type": f"{TASK}.core.runner.Process"},
                        "interpreter": ["/bin/bash", "-c"],
                        "commands": [
                            "set -euo pipefail\n"
                            f'tar -C "{{{{ inputs.project_dir }}}}" -cf - {folders} | tar -xf -\n'
                        ],
                    },
                    {
                        "id": "delete_old",
                        "type": f"{TASK}.core.namespace.DeleteFiles",
                        "namespace": "{{ flow.namespace }}",
                        "files": patterns,
                    },
                    {
                        "id": "upload",
                        "type": f"{TASK}.core.namespace.UploadFiles",
                        "namespace": "{{ flow.namespace }}",
                        "files": patterns,
                        "destination": "/",
                    },
                ],
            }
        ],
    }


def dbt_postgres(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    project = project or load_project()
    return {
        "id": "dbt_postgres",
        "namespace": namespace,
        "description": "dbt build of the nyc_taxi project on Postgres. Emitted by `runner kestra emit`.",
        "tasks": [
            _dbt_task(
                "dbt_build",
                ["dbt build"],
                project,
                storeManifest={"key": "manifest_postgres.json", "namespace": "{{ flow.namespace }}"},
            )
        ],
    }


def dbt_bigquery(namespace: str = NAMESPACE, project: Project | None = None) -> dict[str, Any]:
    project = project or load_project()
    return {
        "id": "dbt_bigquery",
        "namespace": namespace,
        "description": "dbt build of the nyc_taxi project on BigQuery. Emitted by `runner kestra emit`.",
        "tasks": [
            _dbt_task(
                "dbt_build",
                ["dbt build"],
                project,
                bigquery=True,
                storeManifest={"key": "manifest_bigquery.json", "namespace": "{{ flow.namespace }}"},
            )
        ],
    }


FLOWS = (
    postgres_kv,
    project_files,
    postgres_taxi,
    postgres_taxi_scheduled,
    postgres_taxi_backfill,
    dbt_postgres,
    gcp_kv,
    gcp_setup,
    gcp_taxi,
    gcp_taxi_scheduled,
    gcp_taxi_backfill,
    dbt_bigquery,
)


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
    """Write one `<flow id>.yml` per flow into out_dir; returns the paths written.

    ValueError, before anything is written, for a namespace Kestra would refuse."""
    import yaml

    from runner.kestra.validate import load_catalogue

    if not load_catalogue().namespace_re.match(namespace):
        raise ValueError(
            f"{namespace!r} is not a Kestra namespace:"
            " letters, digits, _ and -, dot-separated, like nyc_taxi.prod"
        )

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
