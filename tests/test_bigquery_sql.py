"""A month's BigQuery statements read only its partition and its landing table, proved statically.

The emulator runs the merge but does not bill bytes or prune partitions, and it cannot run
LOAD DATA (the dbt-alone path from the bucket). So the statements dbt sends for one month are
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
from conftest import BUNDLED, empty_bigquery
from sqlglot import exp

from runner.dbt import Dbt, DbtError
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
    "land_from_bucket": r"load data overwrite",
    "fact_trips_batch": r"create or replace table \S+`fact_trips__dbt_tmp`",
    "fact_trips_incremental": r"-- generated script to merge partitions into \S+`fact_trips`",
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
    """What dbt sends to BigQuery to load green 2020-10: by the runner, and by dbt alone from the bucket."""
    warehouse = empty_bigquery(project)
    dbt = Dbt(project_dir=project.root, profiles_dir=project.root / "profiles", target="bq", sql_log=[])
    cache = tmp_path_factory.mktemp("golden-cache")
    pipeline = Pipeline(project, Settings(source=str(BUNDLED), cache_dir=cache), warehouse, dbt)
    outcome = pipeline.load_month(project.taxi("green"), Month(2020, 10))
    assert outcome.status == "loaded", outcome.message
    # dbt alone, reading the object the runner uploaded: the emulator cannot run LOAD DATA
    try:
        dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2020-10", "force": True})
    except DbtError as error:
        assert "LOAD DATA" in str(error)
    # the analytics models: built whole the first time; then incrementally, replacing the month's
    # partitions (a script the emulator cannot run: ARRAY_AGG(DISTINCT .. IGNORE NULLS))
    dbt.build(variables={"refresh_months": ["2020-10"]})
    try:
        dbt.build(select=["fact_trips"], variables={"refresh_months": ["2020-10"]})
    except DbtError as error:
        assert "DISTINCT" in str(error)
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


def test_load_from_the_bucket_overwrites_only_the_landing_table(project):
    [load] = sqlglot.parse((GOLDEN / "land_from_bucket.sql").read_text(), read="bigquery")
    assert isinstance(load, exp.LoadData) and load.args["overwrite"]
    assert load.this.this.sql("bigquery") == LANDING
    assert [column.name for column in load.this.expressions] == list(project.taxi("green").columns)
    options = {
        option.this.name: option.args.get("value")
        for option in load.args["files"].expressions
        if isinstance(option, exp.Property)
    }
    assert [uri.name for uri in options["uris"].expressions] == [
        "gs://taxi-test-bucket/green/green_tripdata_2020-10.csv.gz"
    ]
    assert options["skip_leading_rows"].name == "1"


DBT_OWN = {"fact_trips_batch", "fact_trips_incremental"}  # dbt-bigquery's own statements


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
    """dbt-bigquery's insert_overwrite, as dbt sends it: the batch (made first, to compare its columns
    with the table's) holds the months asked for, and the MERGE deletes target rows only in the
    partitions the batch holds (checked statically: the emulator cannot run the script)."""
    (create,) = sqlglot.parse((GOLDEN / "fact_trips_batch.sql").read_text(), read="bigquery")
    script = sqlglot.parse((GOLDEN / "fact_trips_incremental.sql").read_text(), read="bigquery")
    assert [type(statement).__name__ for statement in script] == ["Declare", "Set", "Merge", "Drop"]
    _, _, merge, _ = script

    assert create.this.sql("bigquery") == "`taxi-test`.`nyc_taxi_core`.`fact_trips__dbt_tmp`"
    batch = create.expression.find(exp.Select).args["with_"].expressions
    [to_build] = [cte for cte in batch if cte.alias == "trips_to_build"]
    assert to_build.this.args["where"].this.sql("bigquery") == "file_month IN (CAST('2020-10-01' AS DATE))"

    assert merge.this.sql("bigquery") == "`taxi-test`.`nyc_taxi_core`.`fact_trips` AS DBT_INTERNAL_DEST"
    whens = [when.sql("bigquery") for when in merge.args["whens"].expressions]
    assert whens[0] == (
        "WHEN NOT MATCHED BY SOURCE AND date(DBT_INTERNAL_DEST.file_month)"
        " IN UNNEST(dbt_partitions_for_replacement) THEN delete"
    )
    assert whens[1].startswith("WHEN NOT MATCHED THEN INSERT")
    assert len(whens) == 2


@pytest.mark.parametrize("variables", ["{}", "{refresh_months: ['2020-10']}"])
def test_analytics_models_compile_to_clean_bigquery_sql(bq_dbt, variables):
    from test_static_sql import ANALYTICS, COMPILED_ALLOWED

    result = bq_dbt.invoke(["compile", "--select", *ANALYTICS, "--vars", variables])
    models = {r.node.name: r.node.compiled_code for r in result.results if r.node.resource_type == "model"}
    assert sorted(models) == sorted(ANALYTICS)
    for name, sql in models.items():
        violations = sqlfluff.lint(sql, dialect="bigquery", exclude_rules=COMPILED_ALLOWED)
        assert violations == [], (name, violations)
