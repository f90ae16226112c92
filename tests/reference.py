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
    """A month file in the public layout: <folder>/<taxi>/<taxi>_tripdata_<month>.csv.gz.

    Rows taken from another month's file are moved to this one (pickup and dropoff shifted by the
    days between the months), as a real file of the month would have them: the project refuses a
    file whose pickups mostly fall outside its month.
    """
    path = folder / taxi / f"{taxi}_tripdata_{month}.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = line_ending.join(",".join(row) for row in [header, *in_month(header, rows, month)]) + line_ending
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def in_month(header: list[str], rows: list[list[str]], month: str) -> list[list[str]]:
    times = [i for i, name in enumerate(header) if name.endswith(("pickup_datetime", "dropoff_datetime"))]
    if not times or not rows:
        return rows
    pickup = times[0]
    months = [row[pickup][:7] for row in rows if len(row) > pickup and row[pickup][4:5] == "-"]
    found = max(set(months), key=months.count) if months else month
    if found == month:
        return rows  # already this month's, or not trip rows to move (a test's broken file)
    shift = date.fromisoformat(f"{month}-01") - date.fromisoformat(f"{found}-01")
    moved = []
    for row in rows:
        row = list(row)
        for i in times:
            if i < len(row) and row[i][4:5] == "-":
                row[i] = (datetime.fromisoformat(row[i]) + shift).strftime("%Y-%m-%d %H:%M:%S")
        moved.append(row)
    return moved


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


def _text(text: str) -> str | None:
    return text.replace("\\", "\\\\").replace("|", "\\|") if text else None


# Each taxi type's identity fields, told apart by a column only its files have (the landing source's
# meta.unique_row_id); a field named "pickup"/"dropoff" is the file's own pickup/dropoff column.
IDENTITIES = {
    "vendorid": (
        ("vendorid", _integer),
        ("pickup", _timestamp),
        ("dropoff", _timestamp),
        ("pulocationid", _integer),
        ("dolocationid", _integer),
        ("fare_amount", _numeric),
        ("trip_distance", _numeric),
    ),
    # fhv: every column of the file
    "dispatching_base_num": (
        ("dispatching_base_num", _text),
        ("pickup", _timestamp),
        ("dropoff", _timestamp),
        ("pulocationid", _integer),
        ("dolocationid", _integer),
        ("sr_flag", _integer),
        ("affiliated_base_number", _text),
    ),
}


def row_id(header: list[str], row: list[str]) -> str:
    named = dict(zip(header, row, strict=True))
    named["pickup"] = named[next(name for name in header if name.endswith("pickup_datetime"))]
    named["dropoff"] = named[next(name for name in header if name.endswith("dropoff_datetime"))]
    (identity,) = (fields for marker, fields in IDENTITIES.items() if marker in header)
    values = [encode(named[name]) for name, encode in identity]
    text = "|".join(r"\N" if value is None else value for value in values)
    return hashlib.md5(text.encode()).hexdigest()


# The TLC data dictionary's integer and text columns; timestamps end in `datetime`; the rest are amounts
# and distances (exact decimals).
INTEGER_COLUMNS = frozenset(
    [
        "vendorid",
        "ratecodeid",
        "pulocationid",
        "dolocationid",
        "passenger_count",
        "payment_type",
        "trip_type",
        "sr_flag",
    ]
)
TEXT_COLUMNS = frozenset(("store_and_fwd_flag", "dispatching_base_num", "affiliated_base_number"))


@dataclass
class ExpectedMonth:
    rows_in_file: int = 0
    exact_repeats: int = 0
    same_id_variants: int = 0
    pickups_outside_month: int = 0
    # id -> the row kept for it: the smallest of its rows, columns compared in file order as typed values,
    # empty (NULL) first, text bytewise; the same row whatever the order of the file
    kept: dict[str, list[str]] = field(default_factory=dict)

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
    by_id: dict[str, list[list[str]]] = {}
    for row in rows:
        day = datetime.fromisoformat(row[pickup]).date() if row[pickup] else None
        if day is not None and not first_day <= day < next_first:
            expected.pickups_outside_month += 1
        by_id.setdefault(row_id(header, row), []).append(row)
    for identity, same_id in by_id.items():
        keys = [_sort_key(header, row) for row in same_id]
        distinct = len(set(keys))
        expected.exact_repeats += len(same_id) - distinct
        expected.same_id_variants += distinct - 1
        expected.kept[identity] = min(same_id, key=lambda row: _sort_key(header, row))
    return expected


def typed_value(name: str, text: str) -> object:
    """A CSV field as the warehouse holds it: empty is None, `.5` equals `0.50`."""
    if not text.strip():
        return None
    if name in TEXT_COLUMNS:
        return text.encode()  # compared bytewise
    if name.endswith("datetime"):
        return datetime.fromisoformat(text.strip())
    if name in INTEGER_COLUMNS:
        return int(text)
    return Decimal(text.strip())


def _sort_key(header: list[str], row: list[str]) -> tuple:
    """Orders rows by their typed columns in file order, None first; equal keys are equal rows."""
    return tuple(
        (0,) if value is None else (1, value)
        for value in (typed_value(name, text) for name, text in zip(header, row, strict=True))
    )


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode()


def republished_rows(header: list[str], rows: list[list[str]]) -> list[list[str]]:
    """A corrected version of a month whose first 1000 rows were loaded: 400 rows gone, 300 new,
    7 exact repeats, and ids with several rows where "first in the file" and "smallest" differ.
    """
    flag, passengers, total = (
        header.index(name) for name in ("store_and_fwd_flag", "passenger_count", "total_amount")
    )

    def variant(index: int, column: int, value: str) -> list[str]:
        changed = list(rows[index])
        changed[column] = value  # not an identity field: same id, different row
        return changed

    return [
        variant(1299, total, "999.99"),  # first in the file, larger than the row it varies
        variant(1100, total, "19.80"),  # B of {B, A, A}: first in the file, larger than A
        *rows[400:1000],
        *rows[1000:1300],
        *rows[500:507],
        variant(1200, total, "5.80"),  # after the row it varies, and smaller
        variant(1100, total, "9.80"),  # A again: typed, 9.80 is 9.8, an exact repeat
        variant(1150, passengers, ""),  # NULL sorts first
        variant(1250, flag, "n"),  # bytewise "N" < "n" (en_US: "n" < "N")
    ]


@dataclass
class CourseFigures:
    """What the course's dbt project (taxi_rides_ny) makes of a month's rows, rule by rule: each field
    is (rows, sum of total_amount)."""

    without_vendor: tuple[int, Decimal] = (0, Decimal(0))
    repeats: tuple[int, Decimal] = (0, Decimal(0))
    to_other_months: tuple[int, Decimal] = (0, Decimal(0))
    # pickup month "YYYY-MM" -> its trips and revenue in the course's monthly figures
    by_pickup_month: dict[str, tuple[int, Decimal]] = field(default_factory=dict)


def course_figures(path: Path, month: str) -> CourseFigures:
    """The course's three rules, applied to the rows the main table keeps of one file: rows without a
    vendor go; one row per vendor, pickup second and pickup zone stays, the earliest dropoff
    (ties: the smallest unique_row_id, as analyses/course_comparison.sql breaks them); a trip counts
    in its pickup month."""

    def plus(figure: tuple[int, Decimal], amount: Decimal) -> tuple[int, Decimal]:
        return figure[0] + 1, figure[1] + amount

    header, _ = read_rows(path)
    pickup = next(name for name in header if name.endswith("pickup_datetime"))
    dropoff = next(name for name in header if name.endswith("dropoff_datetime"))
    figures = CourseFigures()
    groups: dict[tuple, list[tuple]] = {}
    for identity, row in expected_month(path, month).kept.items():
        named = dict(zip(header, row, strict=True))
        amount = Decimal(named["total_amount"] or 0)
        if not named["vendorid"].strip():
            figures.without_vendor = plus(figures.without_vendor, amount)
            continue
        ends = named[dropoff].strip()
        order = (not ends, datetime.fromisoformat(ends) if ends else None, identity)  # NULL last
        key = (int(named["vendorid"]), named[pickup].strip(), named["pulocationid"].strip())
        groups.setdefault(key, []).append((order, named[pickup].strip()[:7], amount))
    for rows in groups.values():
        (_, pickup_month, amount), *repeated = sorted(rows, key=lambda row: row[0])
        for *_, repeat_amount in repeated:
            figures.repeats = plus(figures.repeats, repeat_amount)
        if pickup_month != month:
            figures.to_other_months = plus(figures.to_other_months, amount)
        figures.by_pickup_month[pickup_month] = plus(
            figures.by_pickup_month.get(pickup_month, (0, Decimal(0))), amount
        )
    return figures
