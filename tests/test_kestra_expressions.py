"""The emitted flows pick the same months as the runner, in every time zone, loop and slice.

Their month arithmetic is rendered offline (tests/kestra_render.py) and compared with the runner's:
time zones, the loop's iteration base, slices. No Kestra runs here.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from flow_tree import tasks
from kestra_render import TERNARY, render, truthy

from runner.kestra.flows import (
    gcp_taxi_backfill,
    postgres_taxi_backfill,
    postgres_taxi_scheduled,
    tick_date_expression,
)
from runner.project import Month, load_project, month_range
from runner.schedule import month_for_tick

# --- the scheduled flows: the month of a tick ----------------------------------------------------

PROJECT = load_project()
SCHEDULED = postgres_taxi_scheduled(project=PROJECT)


def _ticks(zone: str) -> list[datetime]:
    """Ticks on the 1st of each month at 00:30, 09:00 and 23:30 local time, and on the 31st, 2019..2021."""
    tz = ZoneInfo(zone)
    ticks = []
    for year in (2019, 2020, 2021):
        for month in range(1, 13):
            for hour, minute in ((0, 30), (9, 0), (23, 30)):
                ticks.append(datetime(year, month, 1, hour, minute, tzinfo=tz))
            last = calendar.monthrange(year, month)[1]
            ticks.append(datetime(year, month, last, 23, 59, tzinfo=tz))
    return ticks


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"])
@pytest.mark.parametrize("semantics", ["previous", "current"])
@pytest.mark.parametrize("as_utc", [True, False], ids=["trigger.date-in-UTC", "trigger.date-in-zone"])
def test_tick_month_matches_the_runner(zone: str, semantics: str, as_utc: bool) -> None:
    year, mm = tick_date_expression("yyyy", zone), tick_date_expression("MM", zone)
    assert len(TERNARY.findall(year)) == 1  # the rewrite above applies, so the shift is really tested
    for tick in _ticks(zone):
        shown = tick.astimezone(ZoneInfo("UTC")) if as_utc else tick
        context = {"trigger": {"date": shown.isoformat()}, "inputs": {"tick_month": semantics}}
        want = month_for_tick(tick, semantics)
        assert (render(year, context), render(mm, context)) == (f"{want.year:04d}", f"{want.month:02d}"), tick


@pytest.mark.parametrize("semantics", ["previous", "current"])
def test_the_emitted_flows_own_month_variables_match_the_runner(semantics: str) -> None:
    (trigger,) = SCHEDULED["triggers"][:1]
    zone = trigger["timezone"]
    year, mm = SCHEDULED["variables"]["year"], SCHEDULED["variables"]["mm"]
    for tick in _ticks(zone):
        context = {"trigger": {"date": tick.isoformat()}, "inputs": {"tick_month": semantics}}
        want = month_for_tick(tick, semantics)
        assert (render(year, context), render(mm, context)) == (f"{want.year:04d}", f"{want.month:02d}"), tick


def test_scheduled_flow_copies_and_builds_the_ticks_month() -> None:
    copies = {t["id"]: t for t in tasks(SCHEDULED) if t["type"].endswith("postgresql.CopyIn")}
    (build,) = [t for t in tasks(SCHEDULED) if t["id"] == "dbt_build"]
    for tick in _ticks("UTC")[::7]:
        for taxi, spec in PROJECT.taxis.items():
            context = {
                "trigger": {"date": tick.isoformat()},
                "inputs": {"taxi": taxi, "tick_month": "previous"},
                "vars": SCHEDULED["variables"],
                "execution": {"id": "exec1"},
                "outputs": {"extract": {"outputFiles": {}}},
            }
            month = month_for_tick(tick, "previous")
            table = render(copies[f"copy_in_{taxi}"]["table"], context | {"kv": lambda key: "nyc_taxi"})
            assert table == f"nyc_taxi{PROJECT.landing_schema_suffix}.{spec.landing_table(month)}"
            assert render("{{ render(vars.file) }}", context) == spec.filename(month).removesuffix(".gz")
            command = render(build["commands"][-1], context)
            assert command == (
                f"dbt build --select {taxi}_tripdata "
                f'--vars \'{{taxi: {taxi}, month: "{month}", load_id: "exec1"}}\''
            )


# --- the backfill flows: LoopUntil over a range -------------------------------------------------


def run_backfill(flow: dict, taxi: str, start: str, end: str) -> list[dict[str, str]] | str:
    """Play the flow's tasks as Kestra would: the range check, then the loop until its condition holds.

    Returns the Subflow inputs of each iteration, or the range check's error message.
    """
    check, loop = flow["tasks"]
    inputs = {"taxi": taxi, "start": start, "end": end}
    context = {"inputs": inputs, "flow": {"namespace": flow["namespace"]}}
    if truthy(render(check["condition"], context)):
        return render(check["errorMessage"], context)
    month_task, load_task = loop["tasks"]
    calls, iteration = [], 1  # LoopUntil.INITIAL_LOOP_VALUE: the first iteration counts 1
    while True:
        outputs = {"months": {"iterationCount": iteration}}
        outputs["month"] = {"value": render(month_task["format"], context | {"outputs": outputs})}
        calls.append({k: render(v, context | {"outputs": outputs}) for k, v in load_task["inputs"].items()})
        if truthy(render(loop["condition"], context | {"outputs": outputs})):
            return calls
        if iteration >= loop["checkFrequency"]["maxIterations"]:
            return calls  # maxIterations reached: LoopUntil stops
        iteration += 1


@pytest.mark.parametrize("build", [postgres_taxi_backfill, gcp_taxi_backfill])
@pytest.mark.parametrize(
    ("start", "end"),
    [("2019-01", "2021-07"), ("2019-11", "2020-02"), ("2020-12", "2021-01"), ("2020-06", "2020-06")],
)
def test_backfill_loads_each_month_of_the_range_once_in_order(build, start: str, end: str) -> None:
    flow = build(project=PROJECT)
    calls = run_backfill(flow, "yellow", start, end)
    want = month_range(Month.parse(start), Month.parse(end))
    assert calls == [{"taxi": "yellow", "year": f"{m.year:04d}", "month": f"{m.month:02d}"} for m in want]
    (load,) = [t for t in tasks(flow) if t["id"] == "load"]
    assert load["flowId"] == flow["id"].removesuffix("_backfill") and load["transmitFailed"] is True


def test_backfill_refuses_a_range_that_ends_before_it_starts() -> None:
    flow = postgres_taxi_backfill(project=PROJECT)
    assert (
        run_backfill(flow, "green", "2020-03", "2020-02")
        == "the range ends (2020-02) before it starts (2020-03)"
    )
    assert (
        run_backfill(flow, "green", "2020-12", "2020-01")
        == "the range ends (2020-01) before it starts (2020-12)"
    )


def test_backfill_offers_exactly_the_projects_months() -> None:
    flow = postgres_taxi_backfill(project=PROJECT)
    inputs = {i["id"]: i for i in flow["inputs"]}
    # the published months, 2019-01 to 2021-07 (dbt_project.yml's first_month and last_month)
    months = [f"{year}-{month:02d}" for year in (2019, 2020, 2021) for month in range(1, 13)][:31]
    assert months[0] == "2019-01" and months[-1] == "2021-07"
    assert inputs["start"]["values"] == months and inputs["end"]["values"] == months
    assert inputs["taxi"]["values"] == ["fhv", "green", "yellow"]
