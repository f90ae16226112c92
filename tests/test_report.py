"""`runner report` writes a self-contained page with the warehouse's own figures, which renders in a browser.

The warehouse holds the bundled real months (green 2020-10, 266 yellow rows of 2020-07) and one
failed month; the report's embedded data is checked against queries of the tables themselves. The
page is then opened in Debian's headless Chromium with the network cut off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import BUNDLED, empty_postgres, postgres_pipelines
from reference import read_rows, write_month

from runner.project import Month
from runner.report import write_report

CHARTS = ("loads", "trips", "revenue", "zones_month", "zones_all", "performance")


@dataclass
class Report:
    page: Path
    data: dict  # the figures the page embeds
    db: Any  # a connection to the warehouse it reports on


@pytest.fixture(scope="module")
def report(pg_server, warehouse_env, project, dbt, tmp_path_factory) -> Iterator[Report]:
    """The page for a warehouse with two real months loaded and one month that failed: made once,
    the module's Postgres tests only read it and the warehouse."""
    empty_postgres(pg_server)
    folder = tmp_path_factory.mktemp("report")
    runs = [(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))]
    header, rows = read_rows(BUNDLED / "green" / "green_tripdata_2020-10.csv.gz")
    bad = folder / "bad"
    write_month(bad, "green", "2020-11", ["vendor", *header[1:]], rows[:50])  # a wrong header
    with postgres_pipelines(dbt, project, folder / "cache") as make_pipeline:
        loads = make_pipeline()
        assert not loads.run(runs).failed
        assert make_pipeline(source=bad).run([(project.taxi("green"), Month(2020, 11))]).failed
        page = write_report(dbt, loads.warehouse, folder / "report.html")

    text = page.read_text()
    data = json.loads(
        text.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    )
    connection = pg_server.connect()
    connection.autocommit = True
    yield Report(page, data, connection)
    connection.close()


def fetch(db, query: str) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def test_the_report_shows_the_warehouses_own_figures(report):
    page, data, db = report.page, report.data, report.db
    loads = {(row["taxi"], row["file_month"]): row for row in data["loads"]}
    ledger = dict(
        ((taxi, str(month)), (rows_in_file, rows_loaded))
        for taxi, month, rows_in_file, rows_loaded in fetch(
            db,
            "select taxi, file_month, rows_in_file, rows_loaded from nyc_taxi.load_ledger"
            " where state = 'succeeded'",
        )
    )
    for key in (("green", "2020-10-01"), ("yellow", "2020-07-01")):
        assert (loads[key]["rows_in_file"], loads[key]["rows_loaded"]) == ledger[key]
        assert loads[key]["models_current"] is True
    assert ledger[("green", "2020-10-01")] == (95120, 95120)

    # the failed month, with its message
    (failure,) = [row for row in data["loads"] if row["latest_state"] == "failed"]
    assert (failure["taxi"], failure["file_month"]) == ("green", "2020-11-01")
    assert "unexpected header" in failure["latest_error"]
    assert "unexpected header" in page.read_text()

    # trips, revenue and the quality counts per service type and month, to the cent
    facts = {
        (service, str(month)): (trips, revenue, negative, without_vendor)
        for service, month, trips, revenue, negative, without_vendor in fetch(
            db,
            "select service_type, file_month, count(*), sum(total_amount),"
            " count(*) filter (where has_negative_amount), count(*) filter (where vendor_id is null)"
            " from nyc_taxi_core.fact_trips group by 1, 2",
        )
    }
    shown = {
        (row["service_type"], row["file_month"]): (
            int(row["trips"]),
            Decimal(row["revenue"]),
            int(row["trips_with_negative_amount"]),
            int(row["trips_without_vendor"]),
        )
        for row in data["service_months"]
    }
    assert shown == facts
    assert facts[("Green", "2020-10-01")][0] == 95120 and facts[("Green", "2020-10-01")][3] == 42510

    # the top zones, for the latest month (yellow's July is older than green's October) and overall
    by_zone = fetch(
        db,
        "select pickup_zone, sum(total_amount) from nyc_taxi_core.fact_trips"
        " group by 1 order by 2 desc, 1 limit 10",
    )
    assert [(z["zone"], Decimal(z["revenue"])) for z in data["top_zones_all"]] == by_zone
    assert data["chosen_month"] == "2020-10"
    october = fetch(
        db,
        "select pickup_zone, sum(total_amount) from nyc_taxi_core.fact_trips where file_month = '2020-10-01'"
        " group by 1 order by 2 desc, 1 limit 10",
    )
    assert [(z["zone"], Decimal(z["revenue"])) for z in data["top_zones_month"]] == october

    # the homework's kind of figure: rows in the files per taxi type and year
    assert {(t["taxi"], t["year"]): t["rows_in_file"] for t in data["yearly_totals"]} == {
        ("green", 2020): 95120,
        ("yellow", 2020): 266,
    }


class Resources(HTMLParser):
    """The page's tags that would fetch something (a script's or image's src, a stylesheet's href)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.fetched.append((tag, value))


def test_the_page_needs_no_network(report):
    text = report.page.read_text()
    resources = Resources()
    resources.feed(text)
    assert resources.fetched == []  # Plotly's JavaScript and the data are inline
    assert text.count('class="plotly-graph-div"') == len(CHARTS)


def test_the_page_renders_its_charts_in_headless_chromium_without_errors(report, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap dev installs it when run as root)")
    page = report.page
    offline = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--proxy-server=127.0.0.1:9",  # every request would fail: the page must need none
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--log-level=0",  # console messages and uncaught errors are logged as INFO:CONSOLE
        "--window-size=1280,3600",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*offline, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    for chart in CHARTS:  # Plotly drew each chart: its div holds the SVG it makes
        drawn = dom.stdout.split(f'id="chart-{chart}"')[1].split('class="plotly-graph-div"')[0]
        assert 'class="main-svg"' in drawn, chart

    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*offline, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=120, check=True
    )
    assert screenshot.stat().st_size > 10_000


def test_bigquery_reports_the_same_loads_and_figures_as_postgres(
    make_bq_pipeline, make_pipeline, bq, bq_dbt, dbt, project, tmp_path
):
    runs = [(project.taxi("green"), Month(2020, 10)), (project.taxi("yellow"), Month(2020, 7))]
    assert not make_bq_pipeline().run(runs).failed
    postgres = make_pipeline()
    assert not postgres.run(runs).failed

    def figures(page: Path) -> dict:
        text = page.read_text()
        data = json.loads(
            text.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
        )
        return {
            "loads": sorted(
                (r["taxi"], r["file_month"], r["rows_in_file"], r["rows_loaded"]) for r in data["loads"]
            ),
            "months": sorted(
                (r["service_type"], r["file_month"], int(r["trips"]), Decimal(r["revenue"]).normalize())
                for r in data["service_months"]
            ),
            "zones": [(z["zone"], Decimal(z["revenue"]).normalize()) for z in data["top_zones_all"]],
            "yearly": data["yearly_totals"],
        }

    in_bigquery = figures(write_report(bq_dbt, bq, tmp_path / "bq.html"))
    in_postgres = figures(write_report(dbt, postgres.warehouse, tmp_path / "pg.html"))
    assert in_bigquery == in_postgres
    assert ("green", "2020-10-01", 95120, 95120) in in_bigquery["loads"]
