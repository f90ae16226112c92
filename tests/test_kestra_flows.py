"""The committed Kestra flows are what `runner kestra emit` writes: valid, secret-free, pinned, in step.

In step with the project: its columns, tables, schedules, dbt files and settings keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from flow_tree import tasks, walk

from runner.kestra import flows
from runner.kestra.flows import emit
from runner.kestra.validate import load_catalogue, validate_paths
from runner.project import Month, load_project

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "kestra" / "flows"
COMMITTED = sorted(FLOWS.glob("*.yml"))


def test_emit_matches_committed(tmp_path):
    written = emit(tmp_path)
    assert sorted(p.name for p in written) == [p.name for p in COMMITTED]
    for path in written:
        assert path.read_bytes() == (FLOWS / path.name).read_bytes(), path.name


def test_committed_flows_validate_clean():
    results = validate_paths([FLOWS])
    assert {p.stem for p in results} == {
        "postgres_kv", "project_files", "postgres_taxi", "postgres_taxi_scheduled", "postgres_taxi_backfill",
        "dbt_postgres", "gcp_kv", "gcp_setup", "gcp_taxi", "gcp_taxi_scheduled", "gcp_taxi_backfill",
        "dbt_bigquery",
    }  # fmt: skip
    assert {str(p): [str(x) for x in probs] for p, probs in results.items() if probs} == {}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_no_credential_literals(path):
    flow = yaml.safe_load(path.read_text())
    for key, value in walk(flow):
        if key in (
            "password",
            "sslKeyPassword",
            "token",
            "keyfile_json",
            "serviceAccount",
            "service-account.json",
        ):
            assert isinstance(value, str) and value.startswith("{{ secret("), (key, value)
    for task in tasks(flow):
        for line in task.get("profiles", "").splitlines():
            key, _, value = line.strip().partition(":")
            if key in ("password", "keyfile_json", "token"):
                assert value.strip().strip("\"'").startswith("{{ secret("), line


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_images_pinned(path):
    for key, value in walk(yaml.safe_load(path.read_text())):
        if key in ("containerImage", "image"):
            assert ":" in value and not value.endswith(":latest"), value
    assert "latest" not in path.read_text()


@pytest.mark.parametrize("name", ["postgres_taxi.yml", "postgres_taxi_scheduled.yml"])
def test_copy_in_columns_and_tables(name):
    project = load_project()
    flow = yaml.safe_load((FLOWS / name).read_text())
    copies = {t["id"]: t for t in tasks(flow) if t["type"].endswith("postgresql.CopyIn")}
    assert set(copies) == {f"copy_in_{taxi}" for taxi in project.taxis}
    month = Month(2020, 3)
    for taxi, spec in project.taxis.items():
        task = copies[f"copy_in_{taxi}"]
        assert task["columns"] == list(spec.columns)
        assert task["format"] == "CSV" and task["header"] is True
        table = (
            task["table"].replace("{{ render(vars.year) }}", "2020").replace("{{ render(vars.mm) }}", "03")
        )
        assert table == "{{ kv('TAXI_SCHEMA') }}" + project.landing_schema_suffix + "." + spec.landing_table(
            month
        )


def test_download_fails_on_partial_file():
    flow = yaml.safe_load((FLOWS / "postgres_taxi.yml").read_text())
    (extract,) = [t for t in tasks(flow) if t["id"] == "extract"]
    script = "\n".join(extract["commands"])
    assert script.startswith("set -euo pipefail") and "curl --fail" in script and "gunzip" in script
    assert extract["interpreter"][0].endswith("bash")


def test_schedule_triggers_follow_schedules_yml():
    config = yaml.safe_load((ROOT / "schedules.yml").read_text())
    flow = yaml.safe_load((FLOWS / "postgres_taxi_scheduled.yml").read_text())
    assert flow["concurrency"]["limit"] == 1
    got = [
        (t["cron"], t["timezone"], t["inputs"]["taxi"], t["inputs"]["tick_month"]) for t in flow["triggers"]
    ]
    want = [(t["cron"], config["timezone"], t["taxi"], t["month"]) for t in config["triggers"]]
    assert got == want


def test_no_removed_loop_types():
    # Kestra 2.0 drops ForEach and friends; the backfills loop with LoopUntil + Subflow, in 1.x and 2.0
    removed = set(load_catalogue().removed)
    for path in COMMITTED:
        for task in tasks(yaml.safe_load(path.read_text())):
            assert task["type"] not in removed, (path.name, task["id"])


def test_dbt_pins_are_the_tested_versions():
    """The versions the dbt tasks pip-install are the ones installed here, which the tests run."""
    from importlib.metadata import version

    for pip in (flows.DBT_POSTGRES_PIP, flows.DBT_BIGQUERY_PIP):
        for package, pinned in re.findall(r"([a-z-]+)==([0-9.]+)", pip):
            assert version(package) == pinned, (package, pinned)
    assert flows.PYTHON_IMAGE.startswith("python:3.") and flows.PYTHON_IMAGE.count(".") == 2


def test_dbt_tasks_read_what_dbt_reads():
    """The namespace files the dbt tasks include, and project_files uploads, are the project's dbt files."""
    project = load_project()
    files = list(project.dbt_files)
    assert files[0] == "dbt_project.yml"
    assert {"models/**", "macros/**", "seeds/**", "tests/dbt/**"} <= set(files)
    assert all((project.root / f.removesuffix("/**")).exists() for f in files)
    dbt_tasks = [
        (path.name, task)
        for path in COMMITTED
        for task in tasks(yaml.safe_load(path.read_text()))
        if task["type"].endswith("DbtCLI")
    ]
    assert len(dbt_tasks) >= 4, dbt_tasks  # the month flows' and the models flows', on both warehouses
    for name, task in dbt_tasks:
        assert task["namespaceFiles"]["include"] == files, (name, task["id"])
    uploaded = [
        t for t in tasks(yaml.safe_load((FLOWS / "project_files.yml").read_text())) if t["id"] == "upload"
    ]
    assert uploaded[0]["files"] == [f"glob:{f}" for f in files]


@pytest.mark.parametrize("name", ["postgres_kv.yml", "gcp_kv.yml"])
def test_settings_flows_check_what_reaches_sql(name):
    """Schema, database and bucket names end up in SQL and paths: the inputs that set them are checked."""
    flow = yaml.safe_load((FLOWS / name).read_text())
    for spec in flow["inputs"]:
        pattern = re.compile(spec["validator"])
        assert not pattern.match("x; drop table y") and not pattern.match("a b")
        if "defaults" in spec:
            assert pattern.match(spec["defaults"]), spec


def test_settings_flows_set_every_key_the_flows_read():
    read = {
        key
        for path in COMMITTED
        for _, value in walk(yaml.safe_load(path.read_text()))
        if isinstance(value, str)
        for key in re.findall(r"kv\('([A-Z_]+)'\)", value)
    }
    set_by = {
        name: {
            t["key"]
            for t in tasks(yaml.safe_load((FLOWS / name).read_text()))
            if t["type"].endswith("kv.Set")
        }
        for name in ("postgres_kv.yml", "gcp_kv.yml")
    }
    assert set_by["postgres_kv.yml"] | set_by["gcp_kv.yml"] == read
    assert set_by["gcp_kv.yml"] == {
        "GCP_PROJECT",
        "GCP_LOCATION",
        "GCS_BUCKET",
        "BQ_DATASET",
    }  # the runner's names


def test_another_namespace_emits_valid_flows_that_call_each_other_there(tmp_path):
    paths = emit(tmp_path, namespace="company.team.nyc-taxi")
    assert {str(p): [str(x) for x in probs] for p, probs in validate_paths(paths).items() if probs} == {}
    calls = []  # (flow, task) of each task that names a namespace
    for path in paths:
        flow = yaml.safe_load(path.read_text())
        assert flow["namespace"] == "company.team.nyc-taxi"
        for task in tasks(flow):
            if task["type"].endswith("Subflow") or "namespace" in task.get("storeManifest", {}):
                calls.append((path.stem, task["id"]))
                assert (task.get("namespace") or task["storeManifest"]["namespace"]) == "{{ flow.namespace }}"
    # the backfills call their month flows: there is something here to check
    assert {"postgres_taxi_backfill", "gcp_taxi_backfill"} <= {flow for flow, _ in calls}, calls


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_input_is_a_fixed_choice_or_checked(path):
    """Inputs reach shell scripts, SQL and paths: any user who may execute a flow chooses them."""
    for spec in yaml.safe_load(path.read_text()).get("inputs", []):
        if spec["type"] == "SELECT":
            assert spec["values"] and not spec.get("allowCustomValue"), spec["id"]
            assert all(re.fullmatch(r"[a-z0-9-]+", str(v)) for v in spec["values"]), spec["id"]
        else:
            assert spec["type"] == "STRING" and spec["validator"].startswith("^"), spec["id"]
            assert spec["validator"].endswith("$") and " " not in spec["validator"], spec["id"]
