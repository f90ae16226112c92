"""A month's BigQuery statements read only its partition and its landing table, proved statically.

The emulator runs the merge but does not bill bytes or prune partitions, and it cannot create
external tables (the dbt-alone path from the bucket). So the statements dbt sends for one month are
captured, compared with golden files (tests/golden/bigquery/; UPDATE_GOLDEN=1 rewrites them after
a deliberate change), and parsed with sqlglot's BigQuery dialect to check what each one reads:
the main table only through its month partition, nothing else but the landing table.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import sqlfluff
import sqlglot
from conftest import BUNDLED, empty_bigquery, stage_external_sources
from sqlglot import exp

from runner.dbt import Dbt
from runner.pipeline import Pipeline, Settings
from runner.project import Month

GOLDEN = Path(__file__).parent / "golden" / "bigquery"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DBT_TMP = re.compile(r"__dbt_tmp[0-9]+")
DBT_COMMENT = re.compile(r"^\s*/\* \{\"app\": \"dbt\".*?\} \*/\n", re.DOTALL)

# golden file name -> how its statement starts
STATEMENTS = {
    "lease_month": r"update \S+`load_ledger`\s+set lease_expires_at",
    "month_counts": r"with distinct_rows as",
    "merge_month": r"begin transaction;",
    "external_table": r"create or replace external table",
    "fact_trips_batch": r"create or replace table \S+`fact_trips__dbt_tmp`",
    "fact_trips_incremental": r"-- generated script to replace the partitions of \S+`fact_trips`",
}
MAIN = "`taxi-test`.`nyc_taxi`.`green_tripdata`"
LANDING = "`taxi-test`.`nyc_taxi_landing`.`green_tripdata_2020_10`"


def normalise(sql: str) -> str:
    text = textwrap.dedent(DBT_COMMENT.sub("", sql)).strip()
    text = UUID.sub("<load_id>", text)
    text = DBT_TMP.sub("__dbt_tmp", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


@pytest.fixture(scope="module")
def month_statements(bq_env, project, tmp_path_factory) -> dict[str, str]:
    """What dbt sends to BigQuery to load green 2020-10: by the runner, and by dbt alone from the bucket;
    then to build the analytics models, whole and then for that month."""
    warehouse = empty_bigquery(project)
    dbt = Dbt(project_dir=project.root, profiles_dir=project.root / "profiles", target="bq", sql_log=[])
    cache = tmp_path_factory.mktemp("golden-cache")
    pipeline = Pipeline(project, Settings(source=str(BUNDLED), cache_dir=cache), warehouse, dbt)
    outcome = pipeline.load_month(project.taxi("green"), Month(2020, 10))
    assert outcome.status == "loaded", outcome.message
    # dbt alone, over the object the runner uploaded: the month's external table (on the emulator an
    # empty native table), then the build, which finds the month loaded from that file already
    month = {"taxi": "green", "month": "2020-10"}
    staged = stage_external_sources(month)
    assert staged.success, staged.message
    dbt.sql_log.extend(staged.sql)
    dbt.build(select=["green_tripdata"], variables=month)
    # the analytics models: built whole the first time; then incrementally, replacing the month's partitions
    dbt.build(variables={"refresh_months": ["2020-10"]})
    dbt.build(select=["fact_trips"], variables={"refresh_months": ["2020-10"]})
    warehouse.close()

    found = {}
    for sql in dbt.sql_log:
        text = normalise(sql)
        for name, start in STATEMENTS.items():
            if re.match(start, text):
                found.setdefault(name, text)
    return found


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_matches_its_golden_file(month_statements, name):
    assert name in month_statements, f"dbt sent no {name} statement"
    golden = GOLDEN / f"{name}.sql"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(month_statements[name])
    assert month_statements[name] == golden.read_text()


def tables(expression: exp.Expression) -> set[str]:
    ctes = {cte.alias for cte in expression.find_all(exp.CTE)}
    return {t.sql("bigquery") for t in expression.find_all(exp.Table) if t.name not in ctes}


def test_merge_reads_only_the_month_partition_and_the_landing_table():
    script = sqlglot.parse((GOLDEN / "merge_month.sql").read_text(), read="bigquery")
    kinds = [type(statement).__name__ for statement in script]
    assert kinds == ["Transaction", "Delete", "Insert", "Update", "Commit"]
    _, delete, insert, update, _ = script

    # the only statement on the main table that reads it: its WHERE names exactly one partition
    assert tables(delete) == {MAIN}
    assert delete.args["where"].this.sql("bigquery") == "file_month = CAST('2020-10-01' AS DATE)"
    # the insert writes the main table and reads nothing but the landing table
    assert insert.this.this.sql("bigquery") == MAIN
    assert tables(insert.expression) == {LANDING}
    assert tables(update) == {"`taxi-test`.`nyc_taxi`.`load_ledger`"}


def test_counts_read_only_the_landing_table():
    [counts] = sqlglot.parse((GOLDEN / "month_counts.sql").read_text(), read="bigquery")
    assert tables(counts) == {LANDING}


def test_external_table_reads_the_month_object_as_the_landing_table(project):
    """dbt-external-tables' DDL for a month (the project's body): the landing table's name and
    types, one URI (the month's object), CSV, gzip, the header row skipped."""
    [create] = sqlglot.parse((GOLDEN / "external_table.sql").read_text(), read="bigquery")
    assert isinstance(create, exp.Create) and create.args["replace"]
    schema = create.this
    assert schema.this.sql("bigquery") == LANDING
    columns = {column.name: column.args["kind"].sql("bigquery") for column in schema.expressions}
    assert list(columns) == list(project.taxi("green").columns)
    assert (columns["vendorid"], columns["lpep_pickup_datetime"], columns["store_and_fwd_flag"]) == (
        "INT64",
        "DATETIME",
        "STRING",
    )
    assert columns["total_amount"] == "NUMERIC(38, 9)"
    properties = create.args["properties"].expressions
    assert any(isinstance(p, exp.ExternalProperty) for p in properties)
    [file_format] = [p.this.name for p in properties if isinstance(p, exp.FileFormatProperty)]
    options = {p.this.name: p.args["value"] for p in properties if type(p) is exp.Property}
    assert [uri.name for uri in options["uris"].expressions] == [
        "gs://taxi-test-bucket/green/green_tripdata_2020-10.csv.gz"
    ]
    assert (file_format, options["compression"].name, options["skip_leading_rows"].name) == (
        "CSV",
        "GZIP",
        "1",
    )


DBT_OWN = {"fact_trips_batch"}  # dbt-bigquery's own statement


@pytest.mark.parametrize("name", sorted(set(STATEMENTS) - DBT_OWN))
def test_statement_lints_clean_as_bigquery_sql(name):
    """sqlfluff's BigQuery dialect parses it (no PRS errors) and finds nothing to fix."""
    # macros write long generated lines and indent by Jinja blocks (as in macros/.sqlfluff)
    allowed = ["layout.long_lines", "layout.indent", "references.quoting"]
    violations = sqlfluff.lint(
        (GOLDEN / f"{name}.sql").read_text(), dialect="bigquery", exclude_rules=allowed
    )
    assert violations == []


def test_incremental_fact_replaces_only_the_months_it_rebuilds():
    """insert_overwrite as the project runs it (macros/bigquery/month_slices.sql): the batch (made
    first, to compare its columns with the table's) holds the months asked for; one transaction
    deletes the target's rows in the partitions the batch holds (a script variable: pruned) and
    inserts the batch."""
    (create,) = sqlglot.parse((GOLDEN / "fact_trips_batch.sql").read_text(), read="bigquery")
    script = sqlglot.parse((GOLDEN / "fact_trips_incremental.sql").read_text(), read="bigquery")
    kinds = [type(statement).__name__ for statement in script]
    assert kinds == ["Declare", "Set", "Transaction", "Delete", "Insert", "Commit", "Drop"]
    _, months, _, delete, insert, _, drop = script

    batch_table = "`taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`"
    assert create.this.sql("bigquery") == batch_table
    batch = create.expression.find(exp.Select).args["with_"].expressions
    [to_build] = [cte for cte in batch if cte.alias == "trips_to_build"]
    assert to_build.this.args["where"].this.sql("bigquery") == "file_month IN (CAST('2020-10-01' AS DATE))"

    assert tables(months) == {batch_table}
    fact = "`taxi-test`.`nyc_taxi_core`.`fact_trips`"
    assert tables(delete) == {fact}
    assert delete.args["where"].this.sql("bigquery") == "file_month IN UNNEST(partitions_to_replace)"
    assert insert.this.this.sql("bigquery") == fact
    assert tables(insert.expression) == {batch_table}
    assert drop.this.sql("bigquery") == batch_table


@pytest.mark.parametrize("variables", ["{}", "{refresh_months: ['2020-10']}"])
def test_analytics_models_compile_to_clean_bigquery_sql(bq_dbt, variables):
    from test_static_sql import ANALYTICS, COMPILED_ALLOWED

    result = bq_dbt.invoke(["compile", "--select", *ANALYTICS, "--vars", variables])
    models = {r.node.name: r.node.compiled_code for r in result.results if r.node.resource_type == "model"}
    assert sorted(models) == sorted(ANALYTICS)
    for name, sql in models.items():
        violations = sqlfluff.lint(sql, dialect="bigquery", exclude_rules=COMPILED_ALLOWED)
        assert violations == [], (name, violations)
