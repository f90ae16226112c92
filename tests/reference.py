"""An independent reading of the trip files, to compute what the warehouse must end up holding.

Written from the documented rules (macros/common/unique_row_id.sql, the merge contract), not
from the code under test: plain csv parsing, Python's own md5 and Decimal arithmetic.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

EPOCH = datetime(1970, 1, 1)
IDENTITY = ("vendorid", "pickup", "dropoff", "pulocationid", "dolocationid", "fare_amount", "trip_distance")


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.lower() for name in next(reader)]
        return header, [row for row in reader if row]


def write_month(
    folder: Path, taxi: str, month: str, header: list[str], rows: list[list[str]], line_ending: str = "\r\n"
) -> Path:
    """A month file in the public layout: <folder>/<taxi>/<taxi>_tripdata_<month>.csv.gz."""
    path = folder / taxi / f"{taxi}_tripdata_{month}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = line_ending.join(",".join(row) for row in [header, *rows]) + line_ending
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def _integer(text: str) -> str | None:
    return str(int(text)) if text.strip() else None


def _timestamp(text: str) -> str | None:
    if not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return str((moment - EPOCH) // timedelta(microseconds=1))


def _numeric(text: str) -> str | None:
    if not text.strip():
        return None
    value = Decimal(text.strip())
    return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")


def row_id(header: list[str], row: list[str]) -> str:
    named = dict(zip(header, row, strict=True))
    pickup = next(name for name in header if name.endswith("pickup_datetime"))
    dropoff = next(name for name in header if name.endswith("dropoff_datetime"))
    fields = [
        _integer(named["vendorid"]),
        _timestamp(named[pickup]),
        _timestamp(named[dropoff]),
        _integer(named["pulocationid"]),
        _integer(named["dolocationid"]),
        _numeric(named["fare_amount"]),
        _numeric(named["trip_distance"]),
    ]
    text = "|".join(r"\N" if value is None else value for value in fields)
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class ExpectedMonth:
    rows_in_file: int = 0
    exact_repeats: int = 0
    same_id_variants: int = 0
    pickups_outside_month: int = 0
    kept: dict[str, list[str]] = field(default_factory=dict)  # id -> the first row with it, in file order

    @property
    def rows_loaded(self) -> int:
        return len(self.kept)

    @property
    def repeats_collapsed(self) -> int:
        return self.exact_repeats + self.same_id_variants


def expected_month(path: Path, month: str) -> ExpectedMonth:
    header, rows = read_rows(path)
    first_day = date.fromisoformat(f"{month}-01")
    next_first = date(first_day.year + first_day.month // 12, first_day.month % 12 + 1, 1)
    pickup = next(i for i, name in enumerate(header) if name.endswith("pickup_datetime"))
    expected = ExpectedMonth(rows_in_file=len(rows))
    for row in rows:
        day = datetime.fromisoformat(row[pickup]).date() if row[pickup] else None
        if day is not None and not first_day <= day < next_first:
            expected.pickups_outside_month += 1
        identity = row_id(header, row)
        first = expected.kept.get(identity)
        if first is None:
            expected.kept[identity] = row
        elif _same_values(header, first, row):
            expected.exact_repeats += 1
        else:
            expected.same_id_variants += 1
    return expected


def _same_values(header: list[str], left: list[str], right: list[str]) -> bool:
    """Equal as the warehouse sees them: typed, so `.5` equals `0.50`."""

    def typed(name: str, text: str) -> object:
        if not text.strip():
            return None
        if name.endswith("datetime"):
            return datetime.fromisoformat(text)
        if name == "store_and_fwd_flag":
            return text
        return Decimal(text)

    return all(typed(n, a) == typed(n, b) for n, a, b in zip(header, left, right, strict=True))


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode()
