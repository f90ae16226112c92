"""The month arithmetic of the emitted flows, rendered offline and compared with the runner's.

No Kestra runs here. The expressions are rendered with Jinja, whose syntax for what the flows use
(filters with positional and named arguments, `~`, `==`, `>`, `-`, map literals) is Pebble's, and with
the Kestra filters they call written below after Kestra's sources (DateAddFilter, AbstractDate,
NumberFilter; Pebble's slice and replace). Pebble's `c ? a : b` is rewritten as Jinja's `(a if c else b)`.
What this checks is our arithmetic (time zones, iteration base, slices), not Kestra itself.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2
import pytest
from flow_tree import tasks

from runner.kestra.flows import (
    gcp_taxi_backfill,
    postgres_taxi_backfill,
    postgres_taxi_scheduled,
    tick_date_expression,
)
from runner.project import Month, load_project, month_range
from runner.schedule import month_for_tick

TERNARY = re.compile(r"([\w.]+ == '[^']*') \? (-?\d+) : (-?\d+)")


def _java_pattern(pattern: str) -> str:
    """The DateTimeFormatter letters the flows use, as strftime; 'quoted' text is literal."""
    out = []
    for quoted, letters in re.findall(r"'([^']*)'|(yyyy|MM|dd|HH|mm|ss|[^'])", pattern):
        if quoted or not letters:
            out.append(quoted.replace("%", "%%"))
        else:
            out.append(
                {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}.get(
                    letters, letters
                )
            )
    return "".join(out)


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)  # ZonedDateTime.parse: an offset is required
    assert parsed.tzinfo is not None, value
    return parsed


def _date(value: str, pattern: str = "iso", timeZone: str | None = None) -> str:  # Kestra names it timeZone
    moment = _parse(value)
    if timeZone is not None:
        moment = moment.astimezone(ZoneInfo(timeZone))
    if pattern == "iso":
        return moment.isoformat(timespec="microseconds")
    return moment.strftime(_java_pattern(pattern))


def _date_add(value: str, amount: int, unit: str) -> str:
    assert isinstance(amount, int), f"dateAdd casts its amount to Long: {amount!r}"
    moment = _parse(value)
    if unit == "MONTHS":  # ZonedDateTime.plusMonths: same day, clamped to the month's length
        index = moment.year * 12 + moment.month - 1 + amount
        year, month = divmod(index, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        moment = moment.replace(year=year, month=month + 1, day=day)
    else:
        moment = moment + timedelta(**{unit.lower(): amount})
    return moment.isoformat(timespec="microseconds")


def _number(value: str) -> int | float:
    assert isinstance(value, str), "'number' filter can only be applied to String"
    return float(value) if "." in value else int(value)


def _replace(value: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        value = value.replace(old, new)
    return value


ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
ENV.filters.update(
    date=_date, dateAdd=_date_add, number=_number, replace=_replace, slice=lambda v, a, b: v[a:b]
)


def render(text: str, context: dict) -> str:
    """Render like Kestra: `render(vars.x)` renders a variable again in the same context."""
    text = TERNARY.sub(r"(\2 if \1 else \3)", text)
    return ENV.from_string(text).render(**context, render=lambda inner: render(inner, context))


def truthy(text: str) -> bool:  # Kestra's TruthUtils: false for false, 0, -0, null and ''
    return text.strip().lower() not in ("false", "0", "-0", "null", "none", "")


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
            command = render(build["commands"][0], context)
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
    months = [str(m) for m in PROJECT.months]
    assert inputs["start"]["values"] == months and inputs["end"]["values"] == months
    assert inputs["taxi"]["values"] == sorted(PROJECT.taxis)
