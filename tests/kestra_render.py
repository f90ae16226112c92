"""Kestra expressions rendered offline, for the flow tests: no Kestra runs here.

The flows' expressions are rendered with Jinja, whose syntax for what they use (filters with positional
and named arguments, `~`, `==`, `>`, `-`, map literals) is Pebble's, with the Kestra filters they call
written here after Kestra's sources (DateAddFilter, AbstractDate, NumberFilter; Pebble's slice and
replace). Pebble's `c ? a : b` is rewritten as Jinja's `(a if c else b)`. What this can check is our
use of them (arithmetic, quoting, names), not Kestra itself.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2

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
