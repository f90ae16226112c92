"""A month COPYed in several sessions at once lands exactly its file's rows, or nothing.

The file is cut into chunks of whole CSV records (never inside a quoted field), which the COPY
sessions take in turns; an error names the line of the file, whichever session met it; the
sessions commit only when all have finished, into a table of the load's own (its comment names
the load) that only that load's merge takes, after checking it holds every row the runner sent.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools

import pytest
from conftest import BUNDLED
from reference import expected_month, read_rows, write_month

from runner.csvfile import CsvChunks, FileError, count_records
from runner.dbt import DbtError
from runner.project import Month

GREEN_2020_10 = BUNDLED / "green" / "green_tripdata_2020-10.csv.gz"
HEADER = ["id", "note", "amount"]


def fetch(db, sql: str, params: tuple = ()) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def csv_file(tmp_path, records: list[list[str]], line_ending: str) -> tuple[object, bytes]:
    text = io.StringIO()
    csv.writer(text, lineterminator=line_ending).writerows([HEADER, *records])
    data = text.getvalue().encode()
    path = tmp_path / "file.csv.gz"
    path.write_bytes(gzip.compress(data, mtime=0))
    return path, data


@pytest.mark.parametrize("read_size", [1, 7, 64, 4096])
@pytest.mark.parametrize("streams", [1, 2, 3])
@pytest.mark.parametrize("line_ending", ["\r\n", "\n"])
def test_chunks_are_whole_records_and_tell_each_records_line_in_the_file(
    tmp_path, project, read_size, streams, line_ending
):
    # quoted fields holding line ends, quotes and commas, next to plain ones
    notes = ["plain", 'say "hi"', "two\nlines", "a,b", "", "three\r\nline\nnote", '"'] * 9
    records = [[str(n), note, f"{n}.5"] for n, note in enumerate(notes)]
    path, data = csv_file(tmp_path, records, line_ending)
    green = project.taxi("green")

    with CsvChunks(green, Month(2020, 10), path, streams=streams, read_size=read_size) as chunks:
        taken: list[tuple[int, bytes]] = []
        for part in itertools.cycle(range(streams)):  # the sessions take chunks in turns
            chunk = chunks.parts[part].read()
            if not chunk:  # the end of the file, for every session
                break
            taken.append((part, chunk))

    assert b"".join(chunk for _, chunk in taken) == data[data.index(b"\n") + 1 :]  # all but the header
    assert len({part for part, _ in taken}) == min(streams, len(taken))
    # the file line each session's n-th record starts on, as COPY would report it
    lines_before = 1  # the header
    starts: dict[int, list[int]] = {part: [] for part in range(streams)}
    for part, chunk in taken:  # each chunk is whole records: the csv module reads it alone
        for record in csv.reader(io.StringIO(chunk.decode(), newline="")):
            starts[part].append(lines_before + 1)
            lines_before += 1
            assert len(record) == len(HEADER)
    for part, lines in starts.items():
        assert [chunks.parts[part].file_line(n) for n in range(1, len(lines) + 1)] == lines
    assert sum(count_records(chunk) for _, chunk in taken) == len(records)


def test_two_sessions_land_the_month_exactly_as_one(make_pipeline, db, project):
    expected = expected_month(GREEN_2020_10, "2020-10")
    counts = "select count(*), sum(total_amount), string_agg(unique_row_id, ',' order by unique_row_id)"
    months = {}
    for streams in (1, 2):
        outcome = make_pipeline(force=True, copy_streams=streams).load_month(
            project.taxi("green"), Month(2020, 10)
        )
        assert outcome.status in ("loaded", "replaced") and outcome.rows == expected.rows_loaded
        months[streams] = fetch(db, f"{counts} from nyc_taxi.green_tripdata")
    assert months[1] == months[2]
    # nothing of the loads is left behind in the landing schema
    assert fetch(db, "select count(*) from pg_tables where schemaname = 'nyc_taxi_landing'") == [(0,)]


def test_a_bad_row_one_session_meets_names_its_line_and_stops_them_all(make_pipeline, db, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    rows = [list(row) for row in rows[:20000]]
    rows[15000][header.index("fare_amount")] = "twelve"  # line 15002 of the file, far into the streams
    write_month(tmp_path, "green", "2020-11", header, rows)
    pipeline = make_pipeline(source=tmp_path)

    outcome = pipeline.load_month(project.taxi("green"), Month(2020, 11))

    assert outcome.status == "failed"
    assert 'COPY green_tripdata_2020_11, line 15002, column fare_amount: "twelve"' in outcome.message
    assert fetch(db, "select count(*) from nyc_taxi.green_tripdata") == [(0,)]
    # the sessions' rows are gone: the load's own table is emptied, not left holding dead rows
    [(size,)] = fetch(db, "select pg_relation_size('nyc_taxi_landing.green_tripdata_2020_11_incoming')")
    assert size == 0


def test_rows_the_sessions_landed_are_merged_by_their_load_only(make_pipeline, dbt, db, project, tmp_path):
    """A load whose sessions committed but whose merge never ran (the runner died in between):
    its rows are in its own table, which dbt alone does not take, and a later load replaces."""
    green, month = project.taxi("green"), Month(2020, 10)
    pipeline = make_pipeline()
    pipeline.dbt.run_operation(
        "tripdata_begin_load", {"taxi": "green", "month": "2020-10", "load_id": "died", "incoming": True}
    )
    landed = pipeline.warehouse.land(green, month, GREEN_2020_10, "-", lambda _: None)
    assert landed == {"landed_rows": 95_120}

    with pytest.raises(DbtError, match="nothing to merge"):  # dbt alone: the landing table is empty
        dbt.build(select=["green_tripdata"], variables={"taxi": "green", "month": "2020-10"})
    with pytest.raises(
        DbtError, match=r"load other has no table of its own to merge \(.* belongs to load died\)"
    ):
        dbt.run_operation("tripdata_begin_load", {"taxi": "green", "month": "2020-10", "load_id": "other"})
        dbt.build(
            select=["green_tripdata"],
            variables={"taxi": "green", "month": "2020-10", "load_id": "other", "landed_rows": 95_120},
        )
    with pytest.raises(DbtError, match="the loader landed 95121 rows, the landing table holds 95120"):
        dbt.build(
            select=["green_tripdata"],
            variables={"taxi": "green", "month": "2020-10", "load_id": "died", "landed_rows": 95_121},
        )
    assert fetch(db, "select count(*) from nyc_taxi.green_tripdata") == [(0,)]

    outcome = make_pipeline().load_month(green, month)  # the next load makes its own table anew
    assert outcome.status == "loaded" and outcome.rows == expected_month(GREEN_2020_10, "2020-10").rows_loaded


def test_a_main_table_indexed_file_month_first_is_rebuilt_id_first_once(make_pipeline, db, project, tmp_path):
    """Main tables made before the id came first in their index get the new one, month rows kept."""
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-09", header, rows[:3000])
    write_month(tmp_path, "green", "2020-10", header, rows[3000:6000])
    make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 9))
    with db.cursor() as cursor:  # as an earlier release made it
        cursor.execute("drop index nyc_taxi.green_tripdata_row_id")
        cursor.execute(
            "create unique index green_tripdata_row_id on nyc_taxi.green_tripdata (file_month, unique_row_id)"
        )

    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 10))

    assert outcome.status == "loaded", outcome.message
    definitions = fetch(
        db,
        "select pg_get_indexdef(i.indexrelid), i.indisvalid from pg_inherits as p"
        " join pg_index as i on i.indexrelid = p.inhrelid"
        " where p.inhparent = 'nyc_taxi.green_tripdata_row_id'::regclass",
    )
    assert len(definitions) == 2  # each month's index is a partition of the main table's
    assert all(d.endswith("(unique_row_id, file_month)") and valid for d, valid in definitions)
    assert fetch(db, "select count(*) from nyc_taxi.green_tripdata") == [(6000,)]


def test_a_truncated_file_fails_in_every_session_with_the_gzip_named(make_pipeline, db, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    path = write_month(tmp_path, "green", "2020-11", header, rows[:20000])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    outcome = make_pipeline(source=tmp_path).load_month(project.taxi("green"), Month(2020, 11))

    assert outcome.status == "failed"
    assert "green_tripdata_2020-11.csv.gz (green 2020-11): truncated or corrupt gzip" in outcome.message
    assert fetch(db, "select count(*) from nyc_taxi.green_tripdata") == [(0,)]


def test_a_file_rules_error_is_the_same_words_with_any_number_of_sessions(make_pipeline, project, tmp_path):
    header, rows = read_rows(GREEN_2020_10)
    write_month(tmp_path, "green", "2020-11", [*header[:-1], "surcharge"], rows[:100])
    messages = {
        streams: make_pipeline(source=tmp_path, copy_streams=streams)
        .load_month(project.taxi("green"), Month(2020, 11))
        .message
        for streams in (1, 2)
    }
    assert messages[1] == messages[2] and "surcharge" in messages[1]


def test_gzip_errors_raise_as_file_errors(tmp_path, project):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n" * 1000)[:40])
    with (
        CsvChunks(project.taxi("green"), Month(2020, 10), path, streams=2) as chunks,
        pytest.raises(FileError),
    ):
        while chunks.parts[0].read():
            pass
    assert chunks.failure is not None
