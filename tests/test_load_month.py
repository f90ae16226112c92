"""A month loads whole or not at all: exactly its file's rows, every value exact, one partition each.

End to end through the runner's core on a real server: a first load, a load of the same file (skipped
or forced), a republished file that replaces its month, neighbour months left alone, a missing file
and a merge that fails on record. (A bad file: tests/test_file_rules.py.)

Expected figures come from tests/reference.py, which reads the CSV independently.
"""

from __future__ import annotations

from decimal import Decimal

from conftest import BUNDLED
from reference import expected_month, read_rows, republished_rows, row_id, write_month

from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
YELLOW_2020_07 = BUNDLED / "yellow" / "yellow_tripdata_2020-07.csv.gz"


def month_rows(db, taxi: str, month: str) -> dict[str, tuple]:
    with db.cursor() as cursor:
        cursor.execute(
            "select unique_row_id, load_id, filename, fare_amount, total_amount"
            f" from nyc_taxi.{taxi}_tripdata where file_month = %s",
            (f"{month}-01",),
        )
        rows = cursor.fetchall()
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), "duplicate unique_row_id in a file month"
    return {row[0]: row[1:] for row in rows}


def ledger(db, load_id: str) -> dict:
    with db.cursor() as cursor:
        cursor.execute("select * from nyc_taxi.load_ledger where load_id = %s", (load_id,))
        names = [c.name for c in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_real_green_month_loads_with_the_counts_of_the_file(make_pipeline, db, project):
    expected = expected_month(GREEN_2020_10, "2020-10")
    assert expected.rows_in_file == 95_120  # the published month, as FACTS states it

    outcome = make_pipeline().load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "loaded", outcome.message
    assert outcome.rows == expected.rows_loaded
    rows = month_rows(db, "green", "2020-10")
    assert set(rows) == set(expected.kept)  # the same ids, computed by Python's md5 from the CSV text
    record = ledger(db, outcome.load_id)
    assert record["state"] == "succeeded" and record["action"] == "loaded"
    assert record["rows_in_file"] == expected.rows_in_file
    assert record["rows_loaded"] == expected.rows_loaded
    assert record["exact_repeats"] == expected.exact_repeats
    assert record["same_id_variants"] == expected.same_id_variants
    assert record["pickups_outside_month"] == expected.pickups_outside_month == 9
    assert record["bytes"] == GREEN_2020_10.stat().st_size
    assert record["filename"] == "green_tripdata_2020-10.csv.gz"
    assert {load for load, _, _, _ in rows.values()} == {outcome.load_id}
    # nothing left in the landing schema: the landing table became the partition
    with db.cursor() as cursor:
        cursor.execute("select count(*) from pg_tables where schemaname = 'nyc_taxi_landing'")
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "select relpersistence from pg_class where oid = 'nyc_taxi.green_tripdata_2020_10'::regclass"
        )
        assert cursor.fetchone()[0] == "p"  # logged: durable like any table


def test_every_value_survives_exactly(make_pipeline, db, project):
    """Amounts are exact numerics and times are zone-less: sums agree to the cent with the CSV."""
    header, rows = read_rows(GREEN_2020_10)
    make_pipeline().load_month(project.taxi("green"), Month(2020, 10))
    total = header.index("total_amount")
    with db.cursor() as cursor:
        cursor.execute(
            "select sum(total_amount), count(*) filter (where vendorid is null),"
            " count(*) filter (where total_amount < 0), min(lpep_pickup_datetime)::text"
            " from nyc_taxi.green_tripdata"
        )
        total_sum, empty_vendor, negative, first_pickup = cursor.fetchone()
    assert total_sum == sum(Decimal(row[total]) for row in rows if row[total])
    assert empty_vendor == sum(1 for row in rows if not row[0])
    assert negative == sum(1 for row in rows if row[total] and Decimal(row[total]) < 0)
    assert first_pickup == min(row[1] for row in rows if row[1])


# Postgres computes a time's epoch microseconds for the id in float8 within 70 years of 1970 and in
# numeric beyond (macros/common/unique_row_id.sql): times at both edges of that range, before and
# after 1970, and two far ones float8 gets wrong by a microsecond.
TIMES_AROUND_THE_FAST_RANGE = [
    "1899-12-31 23:59:59.999999",
    "1900-01-01 00:00:00",
    "1969-12-31 23:59:59.999999",
    "1970-01-01 00:00:00",
    "2039-12-31 23:59:59.999999",
    "2040-01-01 00:00:00",
    "2088-01-24 23:34:56.789012",
    "1833-11-24 11:26:24.710173",  # float8 path: -4294989215289828, one microsecond off
    "2106-02-07 11:32:53.781633",  # float8 path: 4294985573781634, one microsecond off
]


def test_ids_of_times_far_from_1970_are_the_reference_ids(make_pipeline, db, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    rows = rows[:100]
    pickup, dropoff = header.index("lpep_pickup_datetime"), header.index("lpep_dropoff_datetime")
    for index, moment in enumerate(TIMES_AROUND_THE_FAST_RANGE):
        rows[index][dropoff] = moment
        rows[50 + index][pickup] = moment
    path = write_month(tmp_path, "green", "2020-10", header, rows)
    expected = expected_month(path, "2020-10")
    assert expected.rows_loaded == 100

    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "loaded", outcome.message
    stored = month_rows(db, "green", "2020-10")
    assert set(stored) == set(expected.kept)
    edited = [rows[index] for index in range(len(TIMES_AROUND_THE_FAST_RANGE))]
    edited += [rows[50 + index] for index in range(len(TIMES_AROUND_THE_FAST_RANGE))]
    assert all(row_id(header, row) in stored for row in edited)
    assert ledger(db, outcome.load_id)["pickups_outside_month"] == expected.pickups_outside_month


# unique_row_id as releases before the float8 times computed it: the same ids
EARLIER_GREEN_ROW_ID = "md5({})".format(
    " || '|' || ".join(
        rf"coalesce({field}, '\N')"
        for field in [
            "cast(vendorid as text)",
            "cast(cast(extract(epoch from lpep_pickup_datetime) * 1000000 as bigint) as text)",
            "cast(cast(extract(epoch from lpep_dropoff_datetime) * 1000000 as bigint) as text)",
            "cast(pulocationid as text)",
            "cast(dolocationid as text)",
            "cast(trim_scale(fare_amount) as text)",
            "cast(trim_scale(trip_distance) as text)",
        ]
    )
)


def test_a_main_table_made_with_an_earlier_row_id_expression_loads_on(make_pipeline, db, project, tmp_path):
    """Postgres attaches a month only with its parent's expression, so landing tables follow the
    main table's: one an earlier release made keeps its own, and its months get the same ids."""
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-09", header, rows[:100])
    path = write_month(tmp_path, "green", "2020-10", header, rows[100:1100])
    make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 9))
    with db.cursor() as cursor:  # the main table as an earlier release made it
        cursor.execute("create table nyc_taxi.columns_only (like nyc_taxi.green_tripdata)")
        cursor.execute("drop table nyc_taxi.green_tripdata")
        cursor.execute(
            "create table nyc_taxi.green_tripdata (like nyc_taxi.columns_only)"
            " partition by range (file_month)"
        )
        cursor.execute("drop table nyc_taxi.columns_only")
        cursor.execute(
            "alter table nyc_taxi.green_tripdata drop column unique_row_id, add column unique_row_id"
            f' text collate "C" not null generated always as ({EARLIER_GREEN_ROW_ID}) stored'
        )
        cursor.execute(
            "create unique index green_tripdata_row_id on nyc_taxi.green_tripdata (unique_row_id, file_month)"
        )

    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "loaded", outcome.message
    assert set(month_rows(db, "green", "2020-10")) == set(expected_month(path, "2020-10").kept)
    with db.cursor() as cursor:
        cursor.execute(
            "select c.relname, pg_get_expr(d.adbin, d.adrelid) from pg_attrdef as d"
            " join pg_attribute as a on d.adrelid = a.attrelid and d.adnum = a.attnum"
            " join pg_class as c on c.oid = d.adrelid"
            " where c.relname in ('green_tripdata', 'green_tripdata_2020_10') and a.attname = 'unique_row_id'"
        )
        expressions = dict(cursor.fetchall())
    assert expressions["green_tripdata_2020_10"] == expressions["green_tripdata"]
    assert "EXTRACT(epoch FROM lpep_pickup_datetime)" in expressions["green_tripdata"]


def test_yellow_rows_with_lf_endings_and_pickups_before_the_month(make_pipeline, db, project):
    expected = expected_month(YELLOW_2020_07, "2020-07")
    outcome = make_pipeline().load_month(project.taxi("yellow"), Month(2020, 7))
    assert outcome.status == "loaded", outcome.message
    assert set(month_rows(db, "yellow", "2020-07")) == set(expected.kept)
    record = ledger(db, outcome.load_id)
    assert record["pickups_outside_month"] == expected.pickups_outside_month == 5
    assert record["rows_in_file"] == 266


def test_second_load_changes_nothing(make_pipeline, db, project):
    pipeline = make_pipeline()
    first = pipeline.load_month(project.taxi("green"), Month(2020, 10))
    before = month_rows(db, "green", "2020-10")

    again = pipeline.load_month(project.taxi("green"), Month(2020, 10))

    assert again.status == "skipped" and again.load_id == first.load_id
    assert month_rows(db, "green", "2020-10") == before


def test_forced_reload_of_the_same_file_keeps_the_month_whole(make_pipeline, db, project):
    make_pipeline().load_month(project.taxi("green"), Month(2020, 10))
    before = month_rows(db, "green", "2020-10")

    forced = make_pipeline(force=True).load_month(project.taxi("green"), Month(2020, 10))

    assert forced.status == "replaced", forced.message
    after = month_rows(db, "green", "2020-10")
    assert set(after) == set(before)
    assert {load for load, *_ in after.values()} == {forced.load_id}


def test_republished_file_replaces_its_month(make_pipeline, db, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-10", header, rows[:1000])
    make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))
    assert len(month_rows(db, "green", "2020-10")) == 1000

    # The corrected file: 400 rows gone, 300 new, 7 exact repeats, and ids with several rows. Of the rows
    # of an id the smallest is kept (columns compared in file order, NULLs first, text bytewise), wherever
    # it stands in the file: BigQuery keeps the same row, and it knows no file order.
    flag, passengers, total = (
        header.index(name) for name in ("store_and_fwd_flag", "passenger_count", "total_amount")
    )

    smaller_later, larger_earlier, mixed, empty_later, lowercase_later = (
        rows[i] for i in (1200, 1299, 1100, 1150, 1250)
    )
    assert (smaller_later[total], larger_earlier[total], mixed[total]) == ("6.8", "8.3", "9.8")
    assert (empty_later[passengers], lowercase_later[flag]) == ("1", "N")
    republished = republished_rows(header, rows)  # each of these ids varies there
    path = write_month(tmp_path, "green", "2020-10", header, republished)
    expected = expected_month(path, "2020-10")
    # {B, A, A} is one exact repeat and one variant, whichever comes first
    assert (expected.exact_repeats, expected.same_id_variants) == (7 + 1, 5)
    ids = {
        name: row_id(header, row)
        for name, row in [
            ("smaller_later", smaller_later),
            ("larger_earlier", larger_earlier),
            ("mixed", mixed),
            ("empty_later", empty_later),
            ("lowercase_later", lowercase_later),
        ]
    }
    kept = {name: expected.kept[identity] for name, identity in ids.items()}
    assert kept["smaller_later"][total] == "5.80" and kept["larger_earlier"][total] == "8.3"
    assert Decimal(kept["mixed"][total]) == Decimal("9.8")
    assert kept["empty_later"][passengers] == "" and kept["lowercase_later"][flag] == "N"

    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "replaced", outcome.message
    after = month_rows(db, "green", "2020-10")
    assert set(after) == set(expected.kept) and len(after) == 900
    with db.cursor() as cursor:
        cursor.execute(
            "select unique_row_id, total_amount, passenger_count, store_and_fwd_flag"
            " from nyc_taxi.green_tripdata where file_month = '2020-10-01' and unique_row_id = any(%s)",
            (list(ids.values()),),
        )
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
    assert {name: stored[identity] for name, identity in ids.items()} == {
        "smaller_later": (Decimal("5.80"), 1, "N"),
        "larger_earlier": (Decimal("8.3"), 1, "N"),
        "mixed": (Decimal("9.8"), 1, "N"),
        "empty_later": (Decimal("0"), None, "N"),
        "lowercase_later": (Decimal("21.36"), 1, "N"),
    }
    record = ledger(db, outcome.load_id)
    assert (record["exact_repeats"], record["same_id_variants"], record["repeats_collapsed"]) == (
        expected.exact_repeats,
        expected.same_id_variants,
        expected.repeats_collapsed,
    )
    assert record["rows_in_file"] == len(republished) == 913 and record["rows_loaded"] == 900

    # the same rows in the opposite order: the same rows kept, the same counts
    write_month(tmp_path, "green", "2020-10", header, republished[::-1])
    reversed_outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))
    assert reversed_outcome.status == "replaced", reversed_outcome.message
    amounts = {identity: values[2:] for identity, values in after.items()}
    assert {
        identity: values[2:] for identity, values in month_rows(db, "green", "2020-10").items()
    } == amounts
    again = ledger(db, reversed_outcome.load_id)
    assert (again["exact_repeats"], again["same_id_variants"]) == (
        record["exact_repeats"],
        record["same_id_variants"],
    )


def test_repeated_ids_are_found_alike_inline_or_from_their_table(
    make_pipeline, db, project, tmp_path, monkeypatch
):
    # Up to repeated_ids_inline_limit repeated ids, their hashes are written into the query that
    # finds their rows (a parallel scan); past it, the query reads them from a temporary table.
    header, rows = read_rows(GREEN_2020_10)
    path = write_month(tmp_path, "green", "2020-10", header, republished_rows(header, rows))
    expected = expected_month(path, "2020-10")
    sql: list[str] = []
    pipeline = make_pipeline(source=tmp_path, force=True)
    build = pipeline.dbt.build

    def build_with(extra: dict[str, int]):
        def build_with_extra(*args, variables=None, **kwargs):
            return build(*args, variables={**(variables or {}), **extra} or None, **kwargs)

        return build_with_extra

    monkeypatch.setattr(pipeline.dbt, "sql_log", sql)
    kept = {}
    for limit, finds_rows_by in [
        (None, "= any (cast('{"),
        (0, "in (select id_hash from nyc_taxi_repeated_ids)"),
    ]:
        extra = {} if limit is None else {"repeated_ids_inline_limit": limit}
        monkeypatch.setattr(pipeline.dbt, "build", build_with(extra))
        sql.clear()
        outcome = pipeline.load_month(project.taxi("green"), Month(2020, 10))
        assert outcome.status in ("loaded", "replaced"), outcome.message
        (collapse,) = [
            statement for statement in sql if "create temporary table nyc_taxi_later_rows" in statement
        ]
        assert finds_rows_by in collapse
        record = ledger(db, outcome.load_id)
        counts = (record["exact_repeats"], record["same_id_variants"])
        assert counts == (expected.exact_repeats, expected.same_id_variants) == (8, 5)
        rows_now = month_rows(db, "green", "2020-10")
        assert set(rows_now) == set(expected.kept)
        kept[limit] = {identity: values[2:] for identity, values in rows_now.items()}
    assert kept[None] == kept[0]


def test_months_are_partitions_and_loading_one_leaves_the_others(make_pipeline, db, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    paths = {
        month: write_month(tmp_path, "green", month, header, rows[:500])
        for month in ("2020-09", "2020-10", "2020-11")
    }
    pipeline = make_pipeline(source=tmp_path)
    result = pipeline.run(
        [(project.taxi("green"), Month.parse(m)) for m in ("2020-09", "2020-10", "2020-11")]
    )
    assert [o.status for o in result.outcomes] == ["loaded"] * 3
    with db.cursor() as cursor:
        cursor.execute(
            "select count(*) from pg_inherits where inhparent = 'nyc_taxi.green_tripdata'::regclass"
        )
        assert cursor.fetchone()[0] == 3
        cursor.execute("select file_month::text, count(*) from nyc_taxi.green_tripdata group by 1 order by 1")
        assert cursor.fetchall() == [("2020-09-01", 500), ("2020-10-01", 500), ("2020-11-01", 500)]
    # pickups outside a file month stay in that file month
    with db.cursor() as cursor:
        cursor.execute(
            "select pickups_outside_month from nyc_taxi.load_ledger where file_month = '2020-09-01'"
        )
        outside = cursor.fetchone()[0]
    # (October's rows moved to September: October's 31st is still outside it)
    assert outside == expected_month(paths["2020-09"], "2020-09").pickups_outside_month > 0


def test_missing_file_is_a_failed_month_on_record(make_pipeline, db, project, tmp_path):
    (tmp_path / "green").mkdir()
    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2019, 1))
    assert outcome.status == "failed"
    assert "green_tripdata_2019-01.csv.gz (green 2019-01)" in outcome.message
    assert ledger(db, outcome.load_id)["state"] == "failed"


def test_landing_tables_are_per_month(db, dbt):
    """Two months can be landed at once: each has its own landing table."""
    for month in ("2020-09", "2020-10"):
        dbt.run_operation("tripdata_begin_load", {"taxi": "green", "month": month, "load_id": f"l-{month}"})
    with db.cursor() as cursor:
        cursor.execute("select tablename from pg_tables where schemaname = 'nyc_taxi_landing' order by 1")
        assert [r[0] for r in cursor.fetchall()] == ["green_tripdata_2020_09", "green_tripdata_2020_10"]


def test_a_merge_that_fails_after_dropping_the_old_month_changes_nothing(
    make_pipeline, db, project, tmp_path
):
    """The swap is one transaction: here attaching the new month fails after the old one was dropped."""
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-10", header, rows[:2000])
    make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))
    before = month_rows(db, "green", "2020-10")
    with db.cursor() as cursor:  # a constraint the landing table lacks: ATTACH PARTITION refuses it
        cursor.execute(
            "alter table nyc_taxi.green_tripdata add constraint guard check (fare_amount < 100000)"
        )

    write_month(tmp_path, "green", "2020-10", header, rows[:3000])
    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "failed" and "guard" in outcome.message
    assert month_rows(db, "green", "2020-10") == before
    assert ledger(db, outcome.load_id)["state"] == "failed"
    with db.cursor() as cursor:  # the landing table is still there, whole, for a retry
        cursor.execute("select count(*) from nyc_taxi_landing.green_tripdata_2020_10")
        assert cursor.fetchone()[0] == 3000
