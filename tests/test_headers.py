"""Every real header of the public files passes the project's header rule, as the runner reads it.

The rule: macros/common/file_rules.sql. The headers: tests/data/tlc_heads, the first 1,024 bytes of
each file, 2019-01 to 2020-06."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from runner.csvfile import read_header
from runner.dbt import DbtError

HEADS = sorted((Path(__file__).parent / "data" / "tlc_heads").glob("*.csv"))


def header_of(head: Path, tmp_path: Path) -> str:
    path = tmp_path / f"{head.stem}.csv.gz"
    path.write_bytes(gzip.compress(head.read_bytes()))
    header, readable = read_header(path)
    assert readable
    return header


def test_the_samples_are_there():
    assert len(HEADS) == 36


@pytest.mark.parametrize("head", HEADS, ids=lambda p: p.stem)
def test_real_headers_pass(head, dbt, tmp_path):
    taxi, _, month = head.stem.partition("_tripdata_")
    dbt.run_operation(
        "tripdata_check_header", {"taxi": taxi, "month": month, "header": header_of(head, tmp_path)}
    )


def test_a_header_of_the_other_taxi_type_fails(dbt, tmp_path):
    yellow = header_of(Path(__file__).parent / "data" / "tlc_heads" / "yellow_tripdata_2019-01.csv", tmp_path)
    with pytest.raises(
        DbtError, match=r"green_tripdata_2019-01.csv.gz \(green 2019-01\): unexpected header \(missing"
    ):
        dbt.run_operation("tripdata_check_header", {"taxi": "green", "month": "2019-01", "header": yellow})
