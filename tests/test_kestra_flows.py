"""runner kestra emit: the committed flows are what the emitter writes, valid, and secret-free."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner.kestra.flows import emit
from runner.kestra.validate import validate_paths
from runner.project import Month, load_project

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "kestra" / "flows"
COMMITTED = sorted(FLOWS.glob("*.yml"))


def _walk(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    else:
        yield key, node


def _tasks(node):
    if isinstance(node, dict):
        if "type" in node and "id" in node:
            yield node
        for v in node.values():
            yield from _tasks(v)
    elif isinstance(node, list):
        for v in node:
            yield from _tasks(v)


def test_emit_matches_committed(tmp_path):
    written = emit(tmp_path)
    assert sorted(p.name for p in written) == [p.name for p in COMMITTED]
    for path in written:
        assert path.read_bytes() == (FLOWS / path.name).read_bytes(), path.name


def test_committed_flows_validate_clean():
    results = validate_paths([FLOWS])
    assert len(results) == 4
    assert {str(p): [str(x) for x in probs] for p, probs in results.items() if probs} == {}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_no_credential_literals(path):
    flow = yaml.safe_load(path.read_text())
    for key, value in _walk(flow):
        if key in ("password", "sslKeyPassword", "token", "keyfile_json"):
            assert isinstance(value, str) and value.startswith("{{"), (key, value)
    for task in _tasks(flow):
        for line in task.get("profiles", "").splitlines():
            key, _, value = line.strip().partition(":")
            if key in ("password", "keyfile_json", "token"):
                assert value.strip().strip("\"'").startswith("{{ secret("), line


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_images_pinned(path):
    for key, value in _walk(yaml.safe_load(path.read_text())):
        if key in ("containerImage", "image"):
            assert ":" in value and not value.endswith(":latest"), value
    assert "latest" not in path.read_text()


@pytest.mark.parametrize("name", ["postgres_taxi.yml", "postgres_taxi_scheduled.yml"])
def test_copy_in_columns_and_tables(name):
    project = load_project()
    flow = yaml.safe_load((FLOWS / name).read_text())
    copies = {t["id"]: t for t in _tasks(flow) if t["type"].endswith("postgresql.CopyIn")}
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
    (extract,) = [t for t in _tasks(flow) if t["id"] == "extract"]
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
