"""One rule for every path that lands a month's file (macros/common/file_rules.sql): the runner and
dbt's raw_dir path refuse the same files (empty, not gzip, wrong header, header only, another month's
file under this month's name) with the same words, leave the month as it was, and record the
failure in the ledger. Files are the real green month, cut or relabelled.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import replace

import pytest
from conftest import BUNDLED
from reference import read_rows, write_month

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
LABEL = "green_tripdata_2020-11.csv.gz (green 2020-11)"  # every file here is presented as 2020-11


def damaged(folder, damage: str):
    """A file presented as green 2020-11, damaged one way."""
    header, rows = read_rows(GREEN_2020_10)
    path = folder / "green" / "green_tripdata_2020-11.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    if damage == "empty":
        path.write_bytes(gzip.compress(b"", mtime=0))
    elif damage == "not_gzip":
        path.write_bytes(b"VendorID,lpep_pickup_datetime\r\n")
    elif damage == "wrong_header":
        write_month(
            folder, "green", "2020-11", [*header, "tip_currency"], [[*row, "USD"] for row in rows[:50]]
        )
    elif damage == "header_only":
        write_month(folder, "green", "2020-11", header, [])
    elif damage == "another_month":  # October's file saved under November's name
        path.write_bytes(GREEN_2020_10.read_bytes())
    return path


SAYS = {
    "empty": f"{LABEL}: the file is empty (no header, no rows); nothing was loaded",
    "not_gzip": f"{LABEL}: not a readable gzip file; nothing was loaded",
    "wrong_header": f"{LABEL}: unexpected header (unexpected tip_currency)",
    "header_only": f"{LABEL}: a header and no rows: nothing to load",
    "another_month": (
        f"{LABEL}: 95,115 of its 95,120 pickups are outside 2020-11; the most, 95,111, are in 2020-10"
    ),
}


def first_line(message: str) -> str:
    return re.sub(r"\s+", " ", message).strip()


@pytest.mark.parametrize("damage", sorted(SAYS))
def test_the_runner_refuses_the_file_and_records_why(make_pipeline, db, project, tmp_path, damage):
    damaged(tmp_path, damage)
    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 11))

    assert outcome.status == "failed"
    assert SAYS[damage] in first_line(outcome.message)
    with db.cursor() as cursor:
        cursor.execute("select state, error from nyc_taxi.load_ledger where file_month = '2020-11-01'")
        [(state, error)] = cursor.fetchall()
        cursor.execute("select to_regclass('nyc_taxi.green_tripdata_2020_11')")
        assert cursor.fetchone() == (None,)  # nothing of the month was loaded
    assert state == "failed" and SAYS[damage] in first_line(error)


@pytest.mark.parametrize(
    "damage", sorted(set(SAYS) - {"not_gzip"})
)  # raw_dir: gzip -dc reads nothing either way
def test_dbt_alone_refuses_the_same_file_with_the_same_words(dbt, db, raw_dir, damage):
    damaged(raw_dir, damage)
    with pytest.raises(DbtError) as refused:
        dbt.build(
            select=["green_tripdata"],
            variables={"taxi": "green", "month": "2020-11", "raw_dir": str(raw_dir)},
        )

    assert SAYS[damage] in first_line(str(refused.value))
    with db.cursor() as cursor:
        cursor.execute("select count(*) from nyc_taxi.green_tripdata where file_month = '2020-11-01'")
        assert cursor.fetchone() == (0,)


def test_another_months_file_loads_when_the_user_says_so(make_pipeline, db, project, tmp_path, dbt, raw_dir):
    damaged(tmp_path, "another_month")
    pipeline = make_pipeline(source=tmp_path)
    pipeline.settings = replace(pipeline.settings, allow_other_month=True)

    outcome = pipeline.load_month(project.taxi("green"), Month(2020, 11))

    assert (outcome.status, outcome.rows) == ("loaded", 95120)
    damaged(raw_dir, "another_month")
    variables = {"taxi": "green", "month": "2020-11", "raw_dir": str(raw_dir), "allow_other_month": True}
    dbt.build(select=["green_tripdata"], variables={**variables, "force": True})
