"""dbt Labs' best-practice rules hold: dbt-project-evaluator (vendored) finds nothing that is not fixed or
listed with its reason in seeds/dbt_project_evaluator_exceptions.csv, and it does report a rule broken."""

from __future__ import annotations

import json

import pytest
from conftest import dbt_cli

EVALUATOR = ["package:dbt_project_evaluator", "dbt_project_evaluator_exceptions"]


def evaluate(**variables: object) -> dict[str, str]:
    """Builds the evaluator's models and runs its checks; each check's status by name."""
    call = dbt_cli(
        ["build", "--select", *EVALUATOR, "--vars", json.dumps({"evaluate_project": True, **variables})],
        target="pg",
    )
    assert call.success, call.message
    return {name: status for name, status in call.results.items() if name.startswith(("is_empty_", "valid_"))}


@pytest.fixture
def evaluator_schema(warehouse_env, monkeypatch):
    """The evaluator's tables in a schema of their own on the test server."""
    monkeypatch.setenv("TAXI_SCHEMA", "evaluator")


def test_the_evaluator_finds_nothing_unexplained_and_reports_a_broken_rule(evaluator_schema):
    checks = evaluate()
    assert len(checks) == 29  # every check of release 1.3.2 ran
    assert {name: status for name, status in checks.items() if status != "pass"} == {}

    # the marts named as dbt's guide alone would have them: the project's fact_/dm_ names are findings
    checks = evaluate(marts_prefixes=["fct_", "dim_"])
    assert {name for name, status in checks.items() if status != "pass"} == {
        "is_empty_fct_model_naming_conventions_"
    }


def test_user_builds_never_see_the_evaluator():
    call = dbt_cli(["ls", "--resource-type", "model", "--output", "name"], target="pg")
    assert call.success, call.message
    assert "fact_trips" in call.results
    assert not any(name.startswith(("fct_", "int_all_", "stg_nodes")) for name in call.results)
