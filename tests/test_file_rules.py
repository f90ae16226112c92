"""A bad file fails its month and leaves the warehouse as it was, on PostgreSQL and on BigQuery.

Bad two ways: what the file rules (macros/common/file_rules.sql) refuse before a row lands (empty,
not gzip, a wrong header, a header only, another month's file under this month's name), and what a
warehouse rejects as the rows load (a truncated gzip, a value of the wrong type, bytes that are not
UTF-8). Each bad file is offered to its month twice: while the month holds nothing, and while it
holds a load. dbt alone refuses what the file rules refuse in the same words as the runner. Files
are the real green month, cut or damaged.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

import pytest
from conftest import BUNDLED
from reference import expected_month, in_month, read_rows, write_month

from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
LABEL = "green_tripdata_2020-11.csv.gz (green 2020-11)"  # every file here is presented as 2020-11


@cache
def green_october() -> tuple[list[str], list[list[str]]]:
    return read_rows(GREEN_2020_10)


def damaged(folder, damage: str):
    """A file presented as green 2020-11, damaged one way."""
    header, rows = green_october()
    rows = rows[:3000]
    path = folder / "green" / "green_tripdata_2020-11.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    if damage == "empty":  # a download that wrote nothing
        path.write_bytes(b"")
    elif damage == "empty_gzip":
        path.write_bytes(gzip.compress(b"", mtime=0))
    elif damage == "not_gzip":
        path.write_bytes(b"VendorID,lpep_pickup_datetime\r\n")
    elif damage == "extra_column":
        write_month(folder, "green", "2020-11", [*header, "tip_currency"], [[*row, "USD"] for row in rows])
    elif damage == "missing_column":
        drop = header.index("trip_type")
        write_month(
            folder,
            "green",
            "2020-11",
            header[:drop] + header[drop + 1 :],
            [row[:drop] + row[drop + 1 :] for row in rows],
        )
    elif damage == "renamed_column":
        write_month(folder, "green", "2020-11", [*header[:-1], "surcharge"], rows)
    elif damage == "header_only":
        write_month(folder, "green", "2020-11", header, [])
    elif damage == "another_month":  # October's file saved under November's name
        path.write_bytes(GREEN_2020_10.read_bytes())
    elif damage == "truncated":
        write_month(folder, "green", "2020-11", header, rows)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    elif damage == "not_a_number":
        bad = [list(row) for row in rows]
        bad[2][header.index("fare_amount")] = "twelve"  # line 4 of the file
        write_month(folder, "green", "2020-11", header, bad)
    elif damage == "not_an_integer":
        bad = [list(row) for row in rows]
        bad[700][header.index("pulocationid")] = "seventy"  # line 702 of the file
        write_month(folder, "green", "2020-11", header, bad)
    elif damage == "not_utf8":
        bad = [list(row) for row in in_month(header, rows, "2020-11")]
        bad[5][header.index("store_and_fwd_flag")] = "\udcff"  # written as the lone byte 0xff
        text = "\r\n".join(",".join(row) for row in [header, *bad]) + "\r\n"
        path.write_bytes(gzip.compress(text.encode("utf-8", "surrogateescape"), mtime=0))
    else:
        raise ValueError(damage)
    return path


# Refused by the file rules before a row lands: the same words from the runner on either warehouse,
# and from dbt alone.
REFUSED = {
    "empty": f"{LABEL}: the file is empty (no header, no rows); nothing was loaded",
    "empty_gzip": f"{LABEL}: the file is empty (no header, no rows); nothing was loaded",
    "not_gzip": f"{LABEL}: not a readable gzip file; nothing was loaded",
    "extra_column": f"{LABEL}: unexpected header (unexpected tip_currency)",
    "missing_column": f"{LABEL}: unexpected header (missing trip_type)",
    "renamed_column": f"{LABEL}: unexpected header (missing congestion_surcharge; unexpected surcharge)",
    "header_only": f"{LABEL}: a header and no rows: nothing to load",
    "another_month": (
        f"{LABEL}: 95,115 of its 95,120 pickups are outside 2020-11; the most, 95,111, are in 2020-10"
    ),
}
# Rejected by the warehouse as the rows load: its own words, passed on after the file and the month.
URI = "gs://taxi-test-bucket/green/green_tripdata_2020-11.csv.gz"
REJECTED = {
    "truncated": {
        "postgres": [f"{LABEL}: truncated or corrupt gzip (Compressed file ended before the end-of-stream"],
        "bigquery": [f"{LABEL}: BigQuery rejected {URI}: Error while reading data", "end of GZIP stream"],
    },
    "not_a_number": {
        "postgres": [f"{LABEL}: the warehouse rejected the file", 'line 4, column fare_amount: "twelve"'],
        "bigquery": [
            f"{LABEL}: BigQuery rejected {URI}: Error while reading data",
            'column "fare_amount"',
            '"twelve"',
        ],
    },
    "not_an_integer": {
        "postgres": [f"{LABEL}: the warehouse rejected the file", 'line 702, column pulocationid: "seventy"'],
    },
    "not_utf8": {
        "postgres": [
            f"{LABEL}: the warehouse rejected the file",
            'invalid byte sequence for encoding "UTF8"',
        ],
    },
}


def says(damage: str, warehouse: str) -> list[str]:
    """What the failure's message must hold: the file, the month, and what is wrong with the file."""
    return [REFUSED[damage]] if damage in REFUSED else REJECTED[damage][warehouse]


# Every bad file on PostgreSQL. On BigQuery one of each path that differs there: a header rule (the
# runner reads the header the same way for both), the other-month rule (BigQuery counts the pickups),
# a cut-off gzip and a bad value (the load job rejects them); the rest meet the same shared rules.
BIGQUERY_CASES = {"extra_column", "another_month", "truncated", "not_a_number"}
CASES = [
    pytest.param(warehouse, damage, id=f"{warehouse}-{damage}")
    for warehouse in ("postgres", "bigquery")
    for damage in [*REFUSED, *REJECTED]
    if warehouse == "postgres" or damage in BIGQUERY_CASES
]


def one_line(message: str) -> str:
    return re.sub(r"\s+", " ", message).strip()


@dataclass
class Warehouse:
    """A warehouse's pipelines, and what a test reads from it in its own SQL (not the runner's)."""

    make_pipeline: Callable
    query: Callable[[str], list[tuple]]
    exists: Callable[[str], bool]  # is there a table of this name in nyc_taxi

    def rows(self) -> dict[str, tuple]:
        """unique_row_id -> (load_id, filename, pickup, fare_amount, total_amount) of green 2020-11."""
        if not self.exists("green_tripdata"):
            return {}
        found = self.query(
            "select unique_row_id, load_id, filename, lpep_pickup_datetime, fare_amount, total_amount"
            " from nyc_taxi.green_tripdata"
            " where file_month = date '2020-11-01'"
        )
        ids = [row[0] for row in found]
        assert len(ids) == len(set(ids)), "an id twice in the month"
        return {row[0]: row[1:] for row in found}

    def ledger(self) -> list[tuple]:
        """(load_id, state, action, rows_loaded, error) of each load of green 2020-11, in the order they
        started."""
        if not self.exists("load_ledger"):
            return []
        return self.query(
            "select load_id, state, action, rows_loaded, error from nyc_taxi.load_ledger"
            " where taxi = 'green' and file_month = date '2020-11-01' order by started_at"
        )


def open_warehouse(request, warehouse: str) -> Warehouse:
    """The warehouse's fixtures, asked for only here: a PostgreSQL-only run starts no emulator."""
    if warehouse == "postgres":
        db = request.getfixturevalue("db")

        def pg_query(sql: str) -> list[tuple]:
            with db.cursor() as cursor:
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()]

        def pg_exists(table: str) -> bool:
            return pg_query(f"select to_regclass('nyc_taxi.{table}')") != [(None,)]

        return Warehouse(request.getfixturevalue("make_pipeline"), pg_query, pg_exists)

    from google.api_core.exceptions import NotFound

    bq = request.getfixturevalue("bq")

    def bq_query(sql: str) -> list[tuple]:
        return [tuple(row.values()) for row in bq.bigquery.query(sql).result()]

    def bq_exists(table: str) -> bool:
        try:
            bq.bigquery.get_table(f"{bq.config.project}.{bq.config.dataset}.{table}")
        except NotFound:
            return False
        return True

    return Warehouse(request.getfixturevalue("make_bq_pipeline"), bq_query, bq_exists)


@pytest.mark.parametrize(("warehouse", "damage"), CASES)
def test_a_bad_file_fails_its_month_and_leaves_the_warehouse_as_it_was(
    request, project, tmp_path, warehouse, damage
):
    target = open_warehouse(request, warehouse)
    pipeline = target.make_pipeline(source=tmp_path)
    green, november = project.taxi("green"), Month(2020, 11)
    words = says(damage, warehouse)  # each names the file and the month, then what is wrong

    # offered while the month holds nothing: refused, on record, and nothing of it loaded
    damaged(tmp_path, damage)
    refused = pipeline.load_month(green, november)

    assert refused.status == "failed"
    assert all(word in one_line(refused.message) for word in words), refused.message
    [(load_id, state, _, _, error)] = target.ledger()
    assert (load_id, state) == (refused.load_id, "failed")
    assert all(word in one_line(error) for word in words), error
    assert target.rows() == {}
    if warehouse == "postgres":  # not even an empty partition of the month
        assert not target.exists("green_tripdata_2020_11")

    # offered while the month holds a load: refused, on record, and the month keeps that load
    header, rows = green_october()
    good = write_month(tmp_path, "green", "2020-11", header, rows[:2000])
    loaded = pipeline.load_month(green, november)
    assert loaded.status == "loaded", loaded.message
    before = target.rows()
    expected = expected_month(good, "2020-11")
    assert set(before) == set(expected.kept) and len(before) == expected.rows_loaded
    assert {load for load, *_ in before.values()} == {loaded.load_id}

    damaged(tmp_path, damage)
    failed = pipeline.load_month(green, november)

    assert failed.status == "failed"
    assert all(word in one_line(failed.message) for word in words), failed.message
    assert target.rows() == before  # the same rows of the same load, value for value
    attempts = target.ledger()
    assert [row[:4] for row in attempts] == [
        (refused.load_id, "failed", None, None),
        (loaded.load_id, "succeeded", "loaded", expected.rows_loaded),
        (failed.load_id, "failed", None, None),
    ]
    assert all(word in one_line(attempts[-1][4]) for word in words), attempts[-1][4]

    # the failed load holds nothing: a good file loads at once
    write_month(tmp_path, "green", "2020-11", header, rows[:600])
    replaced = pipeline.load_month(green, november)
    assert replaced.status == "replaced", replaced.message
    assert len(target.rows()) == 600


# not_gzip: what the server's gzip -dc reads from it is nothing, as from an empty file
@pytest.mark.parametrize("damage", sorted(set(REFUSED) - {"not_gzip"}))
def test_dbt_alone_refuses_the_same_file_with_the_same_words(dbt, db, raw_dir, damage):
    damaged(raw_dir, damage)
    with pytest.raises(DbtError) as refused:
        dbt.build(
            select=["green_tripdata"],
            variables={"taxi": "green", "month": "2020-11", "raw_dir": str(raw_dir)},
        )

    assert REFUSED[damage] in one_line(str(refused.value))
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
