"""fhv loads through the same machinery as green and yellow: ids, ledger, models, both warehouses.

No real fhv rows are bundled: the files here are SYNTHETIC, written in the published formats (the
2019 header `dropOff_datetime,PUlocationID,DOlocationID` and the 2020+ one `dropoff_datetime,
PULocationID,DOLocationID`, values like `B00001,2019-01-01 00:30:00,2019-01-01 02:51:55,,,,B00001`)
with the quirks the published files are reported to have: empty zones, an empty dispatching base,
dropoffs in 3019, rows repeated field for field. Expected figures come from tests/reference.py and
from the textbook definition of a continuous percentile, computed here in exact arithmetic.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from reference import expected_month, read_rows, write_month

from runner.project import Month

HEADER_2019 = "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag,Affiliated_base_number"  # noqa: E501
HEADER_2020 = "dispatching_base_num,pickup_datetime,dropoff_datetime,PULocationID,DOLocationID,SR_Flag,Affiliated_base_number"  # noqa: E501
BASES = ["B00001", "B00013", "B00037", "B02510", "B02764", "B0|7\\X"]  # the last tests the id's escaping
ZONES = [132, 138, 161, 236, 237, 264, 265]  # 264, 265: the lookup's unknown zones
LONGEST_PLAUSIBLE = 86400


def synthetic_rows(month: str, count: int = 240, seed: int = 17) -> list[list[str]]:
    """A month of fhv rows in the published spelling, with the files' quirks at known places."""
    pick = random.Random(seed)
    start = datetime.fromisoformat(f"{month}-01")
    rows = []
    for _ in range(count):
        pickup = start + timedelta(seconds=pick.randrange(27 * 86400))
        dropoff = pickup + timedelta(seconds=pick.randrange(60, 5400))
        zones = ["", ""] if pick.random() < 0.2 else [str(pick.choice(ZONES)), str(pick.choice(ZONES))]
        if pick.random() < 0.1:
            zones[pick.randrange(2)] = ""  # one zone of two left empty
        base = pick.choice(BASES)
        rows.append(
            [
                base,
                f"{pickup:%Y-%m-%d %H:%M:%S}",
                f"{dropoff:%Y-%m-%d %H:%M:%S}",
                *zones,
                "1" if pick.random() < 0.05 else "",
                base if pick.random() < 0.8 else "",
            ]
        )
    rows[3][0] = ""  # no dispatching base (3 rows of 2019)
    rows[5][2] = "3019" + rows[5][2][4:]  # a dropoff a thousand years on
    rows[7][1], rows[7][2] = rows[7][2], rows[7][1]  # the dropoff before the pickup
    rows[9][1] = (start - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")  # picked up the month before
    rows[11][3], rows[11][4] = "132", "236"
    rows[12][:5] = rows[11][:5]  # same trip, other flag and affiliation: another row, another id
    rows[12][5], rows[12][6] = "1", "B02764"
    rows += [list(rows[20]), list(rows[21]), list(rows[20])]  # 3 exact repeats of 2 lines
    return rows


def write_fhv_month(folder: Path, month: str, header: str) -> Path:
    return write_month(folder, "fhv", month, header.split(","), synthetic_rows(month))


def exact_percentile(values: list[int], fraction: Fraction) -> Decimal | None:
    """percentile_cont's definition: linear interpolation between the ranks around (n - 1) * fraction."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    below = int(rank)
    above = min(below + 1, len(ordered) - 1)
    value = ordered[below] + (rank - below) * (ordered[above] - ordered[below])
    return Decimal(value.numerator) / Decimal(value.denominator)


def travel_seconds(row: list[str]) -> int | None:
    """A kept row's duration when it is possible: not negative, at most a day."""
    seconds = int((datetime.fromisoformat(row[2]) - datetime.fromisoformat(row[1])).total_seconds())
    return seconds if 0 <= seconds <= LONGEST_PLAUSIBLE else None


def expected_travel_times(path: Path) -> dict[tuple, tuple]:
    """(pickup zone, dropoff zone) -> (trips, timed trips, p50, p90) over the rows the month keeps."""
    header, _ = read_rows(path)
    kept = expected_month(path, path.name[13:20]).kept.values()
    groups: dict[tuple, list[int | None]] = {}
    for row in kept:
        named = dict(zip(header, row, strict=True))
        zones = tuple(int(named[z]) if named[z] else None for z in ("pulocationid", "dolocationid"))
        groups.setdefault(zones, []).append(travel_seconds(row))
    return {
        zones: (
            len(times),
            len(timed := [t for t in times if t is not None]),
            exact_percentile(timed, Fraction(1, 2)),
            exact_percentile(timed, Fraction(9, 10)),
        )
        for zones, times in groups.items()
    }


TRAVEL_TIME = (
    "select pickup_location_id, dropoff_location_id, trips, timed_trips,"
    " p50_travel_seconds, p90_travel_seconds"
    " from nyc_taxi_core.dm_fhv_monthly_zone_travel_time where file_month = date '{month}-01'"
)


def travel_times(rows: list[tuple]) -> dict[tuple, tuple]:
    def number(value: object) -> Decimal | None:
        return None if value is None else Decimal(str(value)).normalize()

    return {(row[0], row[1]): (row[2], row[3], number(row[4]), number(row[5])) for row in rows}


def normalised(expected: dict[tuple, tuple]) -> dict[tuple, tuple]:
    return {
        key: (*value[:2], *(None if v is None else v.normalize() for v in value[2:]))
        for key, value in expected.items()
    }


@pytest.fixture
def fhv_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "2019-01": write_fhv_month(tmp_path, "2019-01", HEADER_2019),
        "2020-01": write_fhv_month(tmp_path, "2020-01", HEADER_2020),
    }


def test_both_header_spellings_load_every_distinct_row_with_the_reference_ids(
    make_pipeline, db, project, tmp_path, fhv_files
):
    fhv = project.taxi("fhv")
    result = make_pipeline(source=tmp_path).run([(fhv, Month.parse(month)) for month in fhv_files])
    assert not result.failed, result

    for outcome, (month, path) in zip(result.outcomes, fhv_files.items(), strict=True):
        expected = expected_month(path, month)
        assert expected.exact_repeats == 3 and expected.same_id_variants == 0  # the planted repeats
        with db.cursor() as cursor:
            cursor.execute(
                "select unique_row_id, dispatching_base_num from nyc_taxi.fhv_tripdata where file_month = %s",
                (f"{month}-01",),
            )
            rows = dict(cursor.fetchall())
        # the same md5 hex as Python's over the canonical text: text escaped, NULL as \N
        assert set(rows) == set(expected.kept)
        assert "B0|7\\X" in rows.values() and None in rows.values()

        record = db_load(db, outcome.load_id)
        assert record == {
            "state": "succeeded",
            "action": "loaded",
            "rows_in_file": expected.rows_in_file,
            "rows_loaded": expected.rows_loaded,
            "exact_repeats": 3,
            "same_id_variants": 0,
            "pickups_outside_month": expected.pickups_outside_month,
        }
        assert record["rows_in_file"] == record["rows_loaded"] + 3  # rows in the file = kept + collapsed


def db_load(db, load_id: str) -> dict:
    columns = (
        "state, action, rows_in_file, rows_loaded, exact_repeats, same_id_variants, pickups_outside_month"
    )
    with db.cursor() as cursor:
        cursor.execute(f"select {columns} from nyc_taxi.load_ledger where load_id = %s", (load_id,))
        return dict(zip(columns.split(", "), cursor.fetchone(), strict=True))


def test_models_flag_every_row_and_compute_exact_travel_time_percentiles(
    make_pipeline, db, project, tmp_path, fhv_files
):
    fhv, month = project.taxi("fhv"), "2019-01"
    assert not make_pipeline(source=tmp_path).run([(fhv, Month.parse(month))]).failed
    path = fhv_files[month]
    kept = expected_month(path, month).kept.values()

    with db.cursor() as cursor:
        cursor.execute(
            "select count(*), count(*) filter (where is_pickup_location_unknown),"
            " count(*) filter (where is_duration_impossible),"
            " count(*) filter (where is_pickup_outside_file_month),"
            " count(*) filter (where is_shared_ride)"
            " from nyc_taxi_staging.stg_fhv_tripdata"
        )
        staged = cursor.fetchone()
        cursor.execute(TRAVEL_TIME.format(month=month))
        mart = travel_times(cursor.fetchall())
        cursor.execute("select taxi, file_month::text, models_current from nyc_taxi_core.model_loads")
        model_loads = cursor.fetchall()

    # nothing dropped, each quirk flagged
    assert staged == (
        len(kept),
        sum(1 for row in kept if not row[3]),
        sum(
            1 for row in kept if travel_seconds(row) is None
        ),  # the 3019 dropoff, the one before its pickup ...
        1,
        sum(1 for row in kept if row[5] == "1"),
    )
    expected = normalised(expected_travel_times(path))
    assert any(p50 is not None and p50 != p50.to_integral_value() for _, _, p50, _ in expected.values())
    assert mart == expected  # zone pair by zone pair, every trip counted, percentiles to the last digit
    assert model_loads == [("fhv", "2019-01-01", True)]


def test_a_wrong_fhv_header_is_refused_naming_the_file_and_leaves_nothing(
    make_pipeline, db, project, tmp_path
):
    wrong = HEADER_2019.replace("PUlocationID", "PUzone")
    write_month(tmp_path, "fhv", "2019-02", wrong.split(","), synthetic_rows("2019-02"))

    result = make_pipeline(source=tmp_path).run([(project.taxi("fhv"), Month(2019, 2))])

    (outcome,) = result.outcomes
    assert outcome.failed
    assert (
        "fhv_tripdata_2019-02.csv.gz (fhv 2019-02): unexpected header"
        " (missing pulocationid; unexpected puzone)" in outcome.message
    )
    with db.cursor() as cursor:
        cursor.execute(
            "select to_regclass('nyc_taxi.fhv_tripdata') is null"
            " or not exists (select from nyc_taxi.fhv_tripdata)"
        )
        assert cursor.fetchone() == (True,)


def test_bigquery_holds_the_same_fhv_rows_and_percentiles_as_postgres(
    make_bq_pipeline, make_pipeline, bq, db, project, tmp_path
):
    month = "2019-01"
    write_fhv_month(tmp_path, month, HEADER_2019)
    plan = [(project.taxi("fhv"), Month.parse(month))]
    in_bigquery = make_bq_pipeline(source=tmp_path).run(plan)
    assert not in_bigquery.failed, in_bigquery
    assert not make_pipeline(source=tmp_path).run(plan).failed

    ids = "select unique_row_id from nyc_taxi.fhv_tripdata"
    with db.cursor() as cursor:
        cursor.execute(ids)
        postgres_ids = {row[0] for row in cursor.fetchall()}
        cursor.execute(TRAVEL_TIME.format(month=month))
        postgres_mart = travel_times(cursor.fetchall())
    bigquery_ids = {row["unique_row_id"] for row in bq.bigquery.query(ids).result()}
    bigquery_mart = travel_times(
        [tuple(row.values()) for row in bq.bigquery.query(TRAVEL_TIME.format(month=month)).result()]
    )

    assert bigquery_ids == postgres_ids and len(postgres_ids) == 240
    assert bigquery_mart == postgres_mart


def test_a_green_month_leaves_the_fhv_models_alone_and_an_fhv_month_the_green_ones(
    make_pipeline, db, project, tmp_path
):
    """The ledger's view links every main table to every model; the runner's build after a month
    selects by the taxi tags, so another taxi type's marts of the same file month are not rebuilt."""
    from conftest import BUNDLED

    green_header, green_rows = read_rows(BUNDLED / "green" / "green_tripdata_2020-10.csv.gz")
    write_month(tmp_path, "green", "2019-01", green_header, green_rows[:500])
    write_fhv_month(tmp_path, "2019-01", HEADER_2019)
    january = Month(2019, 1)
    assert not make_pipeline(source=tmp_path).run([(project.taxi("fhv"), january)]).failed

    def row_versions(relation: str) -> set[str]:
        with db.cursor() as cursor:
            cursor.execute(f"select xmin::text from {relation}")  # a rebuilt row is a new row version
            return {row[0] for row in cursor.fetchall()}

    fhv_mart = row_versions("nyc_taxi_core.dm_fhv_monthly_zone_travel_time")
    green_run = make_pipeline(source=tmp_path).run([(project.taxi("green"), january)])
    assert not green_run.failed and green_run.models_months == ["2019-01"]
    assert row_versions("nyc_taxi_core.dm_fhv_monthly_zone_travel_time") == fhv_mart
    revenue_mart = row_versions("nyc_taxi_core.dm_monthly_zone_revenue")
    assert revenue_mart  # the green month's models were built

    forced = make_pipeline(source=tmp_path, force=True).run([(project.taxi("fhv"), january)])
    assert not forced.failed and forced.models_months == ["2019-01"]
    assert row_versions("nyc_taxi_core.dm_monthly_zone_revenue") == revenue_mart
    with db.cursor() as cursor:
        cursor.execute("select taxi, models_current from nyc_taxi_core.model_loads order by taxi")
        assert cursor.fetchall() == [("fhv", True), ("green", True)]
