"""`runner kestra validate` names each problem of a Kestra flow, offline, against the bundled catalogue."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.kestra.validate import load_catalogue, validate_flow, validate_paths

ROOT = Path(__file__).resolve().parent.parent

VALID = """\
id: nyc_taxi_load
namespace: zoomcamp.nyc-taxi
inputs:
  - id: taxi
    type: SELECT
    values: [green, yellow]
variables:
  file: "{{ inputs.taxi }}_tripdata.csv"
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "loading {{ vars.file }} for {{ trigger.date ?? execution.startDate }}"
    level: INFO
  - id: copy
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    url: jdbc:postgresql://pg:5432/taxi
    username: "{{ secret('PG_USER') }}"
    password: "{{ kv('PG_PASSWORD') }}"
    from: "{{ outputs.hello.uri ?? 'x' }}"
    table: green_taxi_raw
    format: CSV
    header: true
  - id: branch
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.taxi == 'green' }}"
    then:
      - id: dbt
        type: io.kestra.plugin.dbt.cli.DbtCLI
        commands:
          - "dbt build --vars '{month: {{ taxirun_month }}}'"
    else:
      - id: skip
        type: io.kestra.plugin.core.log.Log
        message: "{{ outputs.copy.rowCount }} rows for {{ flow.namespace }}.{{ flow.id }}"
triggers:
  - id: monthly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 1 * *"
"""


def write(tmp_path: Path, text: str, name: str = "flow.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def messages(tmp_path: Path, text: str) -> list[str]:
    return [f"{p.location}: {p.message}" for p in validate_flow(write(tmp_path, text))]


def test_catalogue_has_the_types_used_here() -> None:
    cat = load_catalogue()
    for name in (
        "io.kestra.plugin.core.log.Log",
        "io.kestra.plugin.jdbc.postgresql.CopyIn",
        "io.kestra.plugin.dbt.cli.DbtCLI",
        "io.kestra.plugin.core.trigger.Schedule",
        "io.kestra.plugin.core.flow.If",
    ):
        assert name in cat.types
    assert cat.types["io.kestra.plugin.jdbc.postgresql.CopyIn"]["required"] == ["from", "id", "type", "url"]
    assert cat.aliases["io.kestra.core.tasks.log.Log"] == "io.kestra.plugin.core.log.Log"
    assert "io.kestra.plugin.core.flow.EachSequential" in cat.removed
    assert "pluginDefaults" in cat.removed_flow_keys


def test_valid_flow_passes(tmp_path: Path) -> None:
    # `taxirun_month` is an unknown variable: swap it for a valid root before checking.
    assert messages(tmp_path, VALID.replace("taxirun_month", "taskrun.value")) == []


def test_unknown_expression_variable(tmp_path: Path) -> None:
    assert messages(tmp_path, VALID) == [
        "tasks[2].then[0].commands[0]: unknown variable 'taxirun_month' in expression"
    ]


def replace(old: str, new: str) -> str:
    text = VALID.replace("taxirun_month", "taskrun.value")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "type: io.kestra.plugin.core.log.Log",
            "type: io.kestra.plugin.core.log.Logger",
            "tasks[0].type: unknown type io.kestra.plugin.core.log.Logger",
        ),
        (
            "type: io.kestra.plugin.core.log.Log",
            "type: io.kestra.core.tasks.log.Log",
            "tasks[0].type: type io.kestra.core.tasks.log.Log is a deprecated alias; "
            "use io.kestra.plugin.core.log.Log",
        ),
        (
            "    url: jdbc:postgresql://pg:5432/taxi\n",
            "",
            "tasks[1].url: missing required property 'url'",
        ),
        (
            "    header: true\n",
            "    header: true\n    sheet: 1\n",
            "tasks[1].sheet: unknown property 'sheet' for io.kestra.plugin.jdbc.postgresql.CopyIn",
        ),
        (
            "format: CSV",
            "format: PARQUET",
            "tasks[1].format: invalid value 'PARQUET'; expected one of TEXT, CSV, BINARY",
        ),
        ("- id: skip", "- id: hello", "tasks[2].else[0].id: duplicate id 'hello'"),
        (
            "namespace: zoomcamp.nyc-taxi",
            "namespace: Zoomcamp",
            "namespace: flow namespace 'Zoomcamp' does not match ^[a-z0-9][a-z0-9._-]*\\Z",
        ),
        (
            'message: "loading {{ vars.file }}',
            'message: "loading {{ vars.file ',
            "tasks[0].message: unbalanced '{{' / '}}' in expression",
        ),
        (
            "{{ inputs.taxi == 'green' }}",
            "{{ inputs.month == 'green' }}",
            "tasks[2].condition: inputs.month is not a declared input",
        ),
        (
            "{{ vars.file }}",
            "{{ vars.path }}",
            "tasks[0].message: vars.path is not a declared variable",
        ),
        (
            "{{ outputs.hello.uri ?? 'x' }}",
            "{{ outputs.skip.uri }}",
            "tasks[1].from: outputs.skip refers to a task not defined earlier in the flow",
        ),
        (
            "{{ secret('PG_USER') }}",
            "{{ env('PG_USER') }}",
            "tasks[1].username: unknown function env()",
        ),
        (
            "type: io.kestra.plugin.core.flow.If",
            "type: io.kestra.plugin.core.flow.EachSequential",
            "tasks[2].type: type io.kestra.plugin.core.flow.EachSequential is removed in Kestra 2.0; "
            "use io.kestra.plugin.core.flow.Loop",
        ),
        (
            "tasks:\n",
            "pluginDefaults:\n  - type: io.kestra.plugin.core.log.Log\n    values: {level: WARN}\ntasks:\n",
            "pluginDefaults: flow key 'pluginDefaults' is removed in Kestra 2.0 "
            "(flow level; fails to parse on 2.0)",
        ),
        ("variables:", "varz:", "varz: unknown flow key 'varz'"),
        (
            "type: io.kestra.plugin.core.trigger.Schedule",
            "type: io.kestra.plugin.core.log.Log\n    message: hi",
            "triggers[0].type: type io.kestra.plugin.core.log.Log is a task, expected trigger",
        ),
    ],
    ids=[
        "unknown-type",
        "deprecated-alias",
        "missing-required",
        "unknown-property",
        "bad-enum",
        "duplicate-id",
        "bad-namespace",
        "unbalanced-braces",
        "undeclared-input",
        "undeclared-variable",
        "output-of-later-task",
        "unknown-function",
        "removed-in-2.0-type",
        "removed-flow-key",
        "unknown-flow-key",
        "task-as-trigger",
    ],
)
def test_each_problem_is_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    found = messages(tmp_path, replace(old, new))
    assert expected in found, found


def test_removed_type_that_is_in_the_catalogue(tmp_path: Path) -> None:
    flow = """\
    id: loop
    namespace: demo
    tasks:
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: [a, b]
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: "{{ taskrun.value }}"
    """
    assert messages(tmp_path, flow) == [
        "tasks[0].type: type io.kestra.plugin.core.flow.ForEach is removed in Kestra 2.0; "
        "use io.kestra.plugin.core.flow.Loop"
    ]


def test_missing_flow_keys_and_bad_task_id(tmp_path: Path) -> None:
    flow = """\
    id: -bad
    tasks:
      - id: "has space"
        type: io.kestra.plugin.core.log.Log
        message: hi
    """
    found = messages(tmp_path, flow)
    assert "namespace: missing required flow key 'namespace'" in found
    assert any(m.startswith("id: flow id '-bad' does not match") for m in found)
    assert any(m.startswith("tasks[0].id: id 'has space' does not match") for m in found)


def test_validate_paths_expands_folders(tmp_path: Path) -> None:
    write(tmp_path, VALID.replace("taxirun_month", "taskrun.value"), "a.yml")
    write(tmp_path, "id: x\nnamespace: y\n", "b.yaml")
    (tmp_path / "notes.txt").write_text("not a flow")
    results = validate_paths([tmp_path])
    assert sorted(p.name for p in results) == ["a.yml", "b.yaml"]
    assert results[tmp_path / "a.yml"] == []
    assert [p.message for p in results[tmp_path / "b.yaml"]] == ["missing required flow key 'tasks'"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "kestra", "validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, VALID.replace("taxirun_month", "taskrun.value"), "good.yml")
    clean = run_cli(str(good))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problem(s) in 1 flow file(s)" in clean.stdout

    bad = write(tmp_path, replace("format: CSV", "format: PARQUET"), "bad.yml")
    dirty = run_cli(str(tmp_path))
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    assert f"{bad}: tasks[1].format: invalid value 'PARQUET'" in dirty.stdout
    assert "1 problem(s) in 2 flow file(s)" in dirty.stdout

    missing = run_cli(str(tmp_path / "nope.yml"))
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr


def test_filters_on_a_root_are_not_calls(tmp_path: Path) -> None:
    # `trigger.date | dateAdd(..)` was once read as a call of trigger(); filter arguments are still checked
    tick = "{{ trigger.date | dateAdd(-1, 'MONTHS') | date('yyyy-MM', timeZone='UTC') }}"
    assert messages(tmp_path, replace("{{ vars.file }}", tick)) == []
    bad = "{{ trigger.date | dateAdd(months_back, 'MONTHS') }}"
    assert messages(tmp_path, replace("{{ vars.file }}", bad)) == [
        "tasks[0].message: unknown variable 'months_back' in expression"
    ]


LOOP = """\
id: backfill
namespace: nyc_taxi
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ outputs.month.value == '2019-03' }}"
    checkFrequency: {interval: PT1S}
    tasks:
      - id: month
        type: io.kestra.plugin.core.debug.Return
        format: "{{ '2019-01-15T12:00:00Z' | dateAdd(outputs.loop.iterationCount - 1, 'MONTHS') }}"
      - id: load
        type: io.kestra.plugin.core.flow.Subflow
        namespace: nyc_taxi
        flowId: postgres_taxi
        inputs: {month: "{{ outputs.month.value }}"}
"""


def test_loop_condition_may_name_the_loops_children(tmp_path: Path) -> None:
    # LoopUntil renders its condition after each iteration, so it may name tasks written below it
    assert messages(tmp_path, LOOP) == []
    early = LOOP.replace("format: \"{{ '2019", "format: \"{{ outputs.load.executionId }}{{ '2019")
    assert messages(tmp_path, early) == [
        "tasks[0].tasks[0].format: outputs.load refers to a task not defined earlier in the flow"
    ]


@pytest.mark.parametrize("flow_id", ["backfill", "'{{ flow.id }}'"])
@pytest.mark.parametrize("namespace", ["nyc_taxi", "'{{ flow.namespace }}'"])
def test_subflow_calling_its_own_flow(tmp_path: Path, flow_id: str, namespace: str) -> None:
    flow = LOOP.replace(
        "namespace: nyc_taxi\n        flowId: postgres_taxi",
        f"namespace: {namespace}\n        flowId: {flow_id}",
    )
    assert messages(tmp_path, flow) == [
        "tasks[0].tasks[1].flowId: a flow cannot call itself: Kestra refuses to save a recursive Subflow"
    ]


MONTH_FLOW = """\
id: postgres_taxi
namespace: nyc_taxi
inputs:
  - {id: taxi, type: SELECT, values: [green, yellow]}
  - {id: year, type: STRING}
  - {id: month, type: STRING}
  - {id: note, type: STRING, defaults: none}
tasks:
  - {id: hello, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.taxi }}"}
"""


def test_subflow_inputs_checked_against_the_called_flow(tmp_path: Path) -> None:
    write(tmp_path, MONTH_FLOW, "postgres_taxi.yml")
    caller = LOOP.replace("inputs: {month:", "inputs: {taxi: green, mnth: '01', month:")
    write(tmp_path, caller, "backfill.yml")
    results = {
        p.name: [f"{x.location}: {x.message}" for x in probs]
        for p, probs in validate_paths([tmp_path]).items()
    }
    assert results == {
        "postgres_taxi.yml": [],
        "backfill.yml": [
            "tasks[0].tasks[1].inputs: 'mnth' is not an input of flow nyc_taxi.postgres_taxi",
            "tasks[0].tasks[1].inputs: required input 'year' of flow nyc_taxi.postgres_taxi is missing",
        ],
    }
    # a flow that is not among the files is not guessed at
    (tmp_path / "postgres_taxi.yml").unlink()
    assert [str(p) for probs in validate_paths([tmp_path]).values() for p in probs] == []
