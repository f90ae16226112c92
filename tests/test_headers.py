"""Every real header seen in the public files passes the runner's header check (tests/data/tlc_heads:
the first 1,024 bytes of each file, 2019-01 to 2020-06)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from runner.csvfile import FileError, check_header
from runner.project import Month

HEADS = sorted((Path(__file__).parent / "data" / "tlc_heads").glob("*.csv"))


def test_the_samples_are_there():
    assert len(HEADS) == 36


@pytest.mark.parametrize("head", HEADS, ids=lambda p: p.stem)
def test_real_headers_pass(head, project, tmp_path):
    taxi, _, month = head.stem.partition("_tripdata_")
    path = tmp_path / f"{head.stem}.csv.gz"
    path.write_bytes(gzip.compress(head.read_bytes()))
    check_header(project.taxi(taxi), Month.parse(month), path)


def test_a_header_of_the_other_taxi_type_fails(project, tmp_path):
    path = tmp_path / "green_tripdata_2019-01.csv.gz"
    path.write_bytes(
        gzip.compress(
            (Path(__file__).parent / "data" / "tlc_heads" / "yellow_tripdata_2019-01.csv").read_bytes()
        )
    )
    with pytest.raises(
        FileError, match=r"green_tripdata_2019-01.csv.gz \(green 2019-01\): unexpected header \(missing"
    ):
        check_header(project.taxi("green"), Month(2019, 1), path)
