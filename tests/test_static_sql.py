"""The SQL the project compiles to, and its models and macros, lint clean as PostgreSQL (sqlfluff)."""

from __future__ import annotations

import pytest
import sqlfluff
from conftest import ROOT
from sqlfluff.core import FluffConfig, Linter


@pytest.mark.parametrize("taxi", ["green", "yellow", "fhv"])
def test_compiled_month_select_is_clean_postgres_sql(dbt, taxi):
    variables = f"{{taxi: {taxi}, month: '2020-10'}}"
    result = dbt.invoke(["compile", "--select", f"{taxi}_tripdata", "--vars", variables])
    (node,) = [r.node for r in result.results if r.node.name == f"{taxi}_tripdata"]
    sql = node.compiled_code
    assert f'_landing"."{taxi}_tripdata_2020_10"' in sql
    assert "md5(" in sql and "\\N" in sql
    # dbt quotes every relation (RF06); the columns keep the table's order (ST06); the id is one long line
    allowed = ["layout.long_lines", "references.quoting", "structure.column_order"]
    violations = sqlfluff.lint(sql, dialect="postgres", exclude_rules=allowed)
    assert [v for v in violations if v["code"] in {"PRS", "TMP"}] == []  # it parses
    assert violations == []


def test_the_project_lints_clean():
    """CI runs the same: `sqlfluff lint models macros analyses`."""
    linter = Linter(config=FluffConfig.from_root(overrides={"dialect": "postgres"}))
    result = linter.lint_paths(tuple(str(ROOT / folder) for folder in ("models", "macros", "analyses")))
    assert result.get_violations() == [], result.as_records()


ANALYTICS = [
    "stg_green_tripdata",
    "stg_yellow_tripdata",
    "dim_zones",
    "fact_trips",
    "dm_monthly_zone_revenue",
    "stg_fhv_tripdata",
    "fact_fhv_trips",
    "dm_fhv_monthly_zone_travel_time",
]
# dbt quotes relations (RF06); compiled SQL keeps Jinja-made lines, indents and endings;
# `select * from <cte>` is dbt's style (AM04)
COMPILED_ALLOWED = [
    *("references.quoting", "layout.long_lines", "layout.indent", "layout.end_of_file"),
    *("ambiguous.column_count", "structure.column_order"),  # staging keeps the shared trip schema's order
]


def compiled_models(dbt, variables: str) -> dict[str, str]:
    result = dbt.invoke(["compile", "--select", *ANALYTICS, "--vars", variables])
    return {r.node.name: r.node.compiled_code for r in result.results if r.node.resource_type == "model"}


@pytest.mark.parametrize("variables", ["{}", "{refresh_months: ['2020-10']}"])
def test_analytics_models_compile_to_clean_postgres_sql(dbt, variables):
    models = compiled_models(dbt, variables)
    assert sorted(models) == sorted(ANALYTICS)  # each was compiled, so each is checked below
    for name, sql in models.items():
        # the reference's models break Postgres with these two BigQuery-isms
        assert "qualify" not in sql.lower() and "as string" not in sql.lower(), name
        violations = sqlfluff.lint(sql, dialect="postgres", exclude_rules=COMPILED_ALLOWED)
        assert violations == [], (name, violations)
