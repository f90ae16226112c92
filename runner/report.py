"""`runner report`: one self-contained HTML page of what is loaded, how well, and what it says.

The queries are the project's analyses (analyses/report/*.sql), compiled by dbt for the target and
run on it; this module only shapes their rows into tables and Plotly charts. The page embeds
Plotly's JavaScript and its own data (a JSON block the tests read), so it opens without a network.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ANALYSES = ("report_loads", "report_service_months", "report_zone_revenue")
TOP_ZONES = 10
# A month whose row count is below half or above twice the median of its neighbours stands out.
NEIGHBOURS = 3
OUTLIER_FACTOR = 2.0
STATE_COLOURS = {
    "loaded": "#2e7d32",
    "models behind": "#f9a825",
    "running": "#1565c0",
    "failed": "#c62828",
    "removed": "#9e9e9e",
}


class ReportError(RuntimeError):
    """The report cannot be made (no models built yet, or the charting extra is missing)."""


@dataclass
class ReportData:
    loads: list[dict[str, Any]]
    service_months: list[dict[str, Any]]
    zone_revenue: list[dict[str, Any]]
    made_at: str = field(default_factory=lambda: datetime.now().isoformat(timespec="seconds"))

    def month_state(self, load: dict[str, Any]) -> str:
        """loaded, models behind, running, failed (interrupted too) or removed: the grid's colour."""
        state = load["latest_state"]
        if state == "running":
            return "running"
        if state in ("failed", "interrupted"):
            return "failed"
        if load["load_id"] is None:
            return "removed"
        return "loaded" if load["models_current"] else "models behind"

    def failures(self) -> list[dict[str, Any]]:
        failed = [load for load in self.loads if self.month_state(load) == "failed"]
        return sorted(failed, key=lambda load: str(load["latest_started_at"]), reverse=True)

    def yearly_totals(self) -> dict[tuple[str, int], int]:
        """Rows in the files per taxi type and year (the course's homework figures)."""
        totals: dict[tuple[str, int], int] = defaultdict(int)
        for load in self.loads:
            if load["rows_in_file"] is not None and load["load_id"] is not None:
                totals[(load["taxi"], load["file_month"].year)] += load["rows_in_file"]
        return dict(sorted(totals.items()))

    def outliers(self) -> list[dict[str, Any]]:
        """Months whose rows in the file are far from the median of the months around them."""
        by_taxi: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for load in self.loads:
            if load["rows_in_file"] is not None and load["load_id"] is not None:
                by_taxi[load["taxi"]].append(load)
        found = []
        for taxi, loads in sorted(by_taxi.items()):
            loads.sort(key=lambda load: load["file_month"])
            for i, load in enumerate(loads):
                around = [
                    o["rows_in_file"]
                    for o in loads[max(0, i - NEIGHBOURS) : i + NEIGHBOURS + 1]
                    if o is not load
                ]
                if len(around) < 2:
                    continue
                typical = statistics.median(around)
                rows = load["rows_in_file"]
                if typical and not typical / OUTLIER_FACTOR <= rows <= typical * OUTLIER_FACTOR:
                    found.append(
                        {
                            "taxi": taxi,
                            "file_month": load["file_month"],
                            "rows_in_file": rows,
                            "median_around": typical,
                        }
                    )
        return found

    def top_zones(self, month: date | None) -> list[dict[str, Any]]:
        """The zones with the most revenue in a file month, or over every month (None)."""
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for row in self.zone_revenue:
            if month is None or row["file_month"] == month:
                revenue[row["revenue_zone"]] += Decimal(row["revenue"] or 0)
        ranked = sorted(revenue.items(), key=lambda item: (-item[1], item[0]))[:TOP_ZONES]
        return [{"zone": zone, "revenue": amount} for zone, amount in ranked]

    def latest_month(self) -> date | None:
        months = [row["file_month"] for row in self.zone_revenue]
        return max(months) if months else None


def collect(dbt: Any, warehouse: Any) -> ReportData:
    """Compile the report's analyses for the target and run them there."""
    from runner.pipeline import MODEL_LOADS

    manifest = dbt.parse()
    result = dbt.invoke(["compile", "--select", *ANALYSES, "--no-populate-cache"])
    compiled = {r.node.name: r.node.compiled_code for r in result.results}
    needs = manifest.nodes[MODEL_LOADS].relation_name  # the models were built at least once
    rows = {}
    for name in ANALYSES:
        try:
            found = warehouse.select(compiled[name], needs=needs)
        except Exception as error:  # the driver's own error types: psycopg2's, Google's
            raise ReportError(
                f"analyses/report/{name}.sql failed on the warehouse ({error}); models built by an"
                " older version lack what it reads: a `dbt build` (or the next `runner load`) updates them"
            ) from error
        if found is None:
            raise ReportError(
                "nothing to report: the models were never built (runner load or dbt build first)"
            )
        rows[name] = found
    return ReportData(
        loads=sorted(rows["report_loads"], key=lambda r: (r["taxi"], r["file_month"])),
        service_months=sorted(
            rows["report_service_months"], key=lambda r: (r["service_type"], r["file_month"])
        ),
        zone_revenue=rows["report_zone_revenue"],
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _month(value: date) -> str:
    return value.strftime("%Y-%m")


def _grid_label(load: dict[str, Any], state: str) -> str:
    seconds = float(load["load_seconds"] or 0)
    return (
        f"{load['taxi']} {_month(load['file_month'])}: {state}<br>"
        f"rows {load['rows_loaded'] or 0:,} of {load['rows_in_file'] or 0:,} in the file<br>"
        f"file {(load['bytes'] or 0) / 1e6:.1f} MB, load {seconds:.1f} s"
    )


def _figures(data: ReportData, month: date | None) -> dict[str, Any]:
    """The page's charts, as Plotly figures."""
    import plotly.graph_objects as go

    figures: dict[str, Any] = {}
    # loads: a taxi x month grid, one trace per state so the legend explains the colours
    grid = go.Figure()
    for state, colour in STATE_COLOURS.items():
        loads = [load for load in data.loads if data.month_state(load) == state]
        if loads:
            grid.add_trace(
                go.Scatter(
                    x=[_month(load["file_month"]) for load in loads],
                    y=[load["taxi"] for load in loads],
                    mode="markers",
                    marker={"symbol": "square", "size": 18, "color": colour},
                    name=state,
                    text=[_grid_label(load, state) for load in loads],
                    hoverinfo="text",
                )
            )
    grid.update_layout(title="Loads: taxi type x file month", height=260, xaxis={"type": "category"})
    figures["loads"] = grid

    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in data.service_months:
        by_service[row["service_type"]].append(row)
    for key, column, title in (
        ("trips", "trips", "Trips per file month"),
        ("revenue", "revenue", "Revenue per file month (total_amount, USD)"),
    ):
        figure = go.Figure()
        for service, rows in sorted(by_service.items()):
            if any(row[column] is not None for row in rows):
                figure.add_trace(
                    go.Scatter(
                        x=[_month(row["file_month"]) for row in rows],
                        y=[float(row[column] or 0) for row in rows],
                        mode="lines+markers",
                        name=service,
                    )
                )
        figure.update_layout(title=title, height=340, xaxis={"type": "category"})
        figures[key] = figure

    for key, chosen, title in (
        (
            "zones_month",
            month,
            f"Top pickup zones by revenue, {_month(month)}" if month else "Top pickup zones",
        ),
        ("zones_all", None, "Top pickup zones by revenue, every loaded month"),
    ):
        zones = data.top_zones(chosen) if chosen is not None or key == "zones_all" else []
        figure = go.Figure(
            go.Bar(
                x=[float(z["revenue"]) for z in zones][::-1],
                y=[z["zone"] for z in zones][::-1],
                orientation="h",
            )
        )
        figure.update_layout(title=title, height=380, margin={"l": 220})
        figures[key] = figure

    timed = [load for load in data.loads if load["load_seconds"] is not None and load["rows_in_file"]]
    performance = go.Figure()
    for taxi in sorted({load["taxi"] for load in timed}):
        loads = [load for load in timed if load["taxi"] == taxi]
        performance.add_trace(
            go.Bar(
                x=[_month(load["file_month"]) for load in loads],
                y=[float(load["load_seconds"]) for load in loads],
                name=f"{taxi}: seconds",
                text=[
                    f"{load['rows_in_file'] / max(float(load['load_seconds']), 1e-3):,.0f} rows/s"
                    for load in loads
                ],
            )
        )
    performance.update_layout(
        title="Ingestion seconds per file month", height=320, xaxis={"type": "category"}
    )
    figures["performance"] = performance
    return figures


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: Any) -> str:
    return "" if value is None else f"{value:,}"


def render(data: ReportData, month: date | None = None) -> str:
    """The whole page: Plotly's JavaScript once, then each chart and table, then the data as JSON."""
    try:
        import plotly.io as pio
        from plotly.offline import get_plotlyjs
    except ImportError as error:
        raise ReportError("runner report needs Plotly: pip install 'nyc-taxi-pipeline[report]'") from error

    month = month or data.latest_month()
    figures = _figures(data, month)

    def chart(name: str) -> str:
        return pio.to_html(figures[name], full_html=False, include_plotlyjs=False, div_id=f"chart-{name}")

    failures = _table(
        ["taxi", "month", "state", "started", "message"],
        [
            [
                f["taxi"],
                _month(f["file_month"]),
                f["latest_state"],
                f["latest_started_at"],
                (f["latest_error"] or "")[:400],
            ]
            for f in data.failures()[:10]
        ],
    )
    quality = _table(
        [
            "taxi",
            "month",
            "rows in file",
            "rows kept",
            "exact repeats",
            "same-id variants",
            "pickups outside month",
        ],
        [
            [
                load["taxi"],
                _month(load["file_month"]),
                _number(load["rows_in_file"]),
                _number(load["rows_loaded"]),
                _number(load["exact_repeats"]),
                _number(load["same_id_variants"]),
                _number(load["pickups_outside_month"]),
            ]
            for load in data.loads
            if load["load_id"] is not None
        ],
    )
    amounts = _table(
        ["service", "month", "trips", "with a negative amount", "without a vendor"],
        [
            [
                row["service_type"],
                _month(row["file_month"]),
                _number(row["trips"]),
                _number(row["trips_with_negative_amount"]),
                _number(row["trips_without_vendor"]),
            ]
            for row in data.service_months
            if row["service_type"] != "FHV"
        ],
    )
    outliers = data.outliers()
    flagged = (
        _table(
            ["taxi", "month", "rows in file", "median of the months around"],
            [
                [o["taxi"], _month(o["file_month"]), _number(o["rows_in_file"]), _number(o["median_around"])]
                for o in outliers
            ],
        )
        if outliers
        else "<p>No month stands out from the months around it.</p>"
    )
    yearly = _table(
        ["taxi", "year", "rows in the files"],
        [[taxi, year, _number(rows)] for (taxi, year), rows in data.yearly_totals().items()],
    )
    payload = {
        "made_at": data.made_at,
        "chosen_month": _month(month) if month else None,
        "loads": data.loads,
        "service_months": data.service_months,
        "yearly_totals": [
            {"taxi": taxi, "year": year, "rows_in_file": rows}
            for (taxi, year), rows in data.yearly_totals().items()
        ],
        "top_zones_month": data.top_zones(month) if month else [],
        "top_zones_all": data.top_zones(None),
        "outliers": outliers,
    }
    data_json = json.dumps(payload, default=_json_default).replace("</", "<\\/")
    return PAGE.format(
        made_at=html.escape(data.made_at),
        plotly_js=get_plotlyjs(),
        loads=chart("loads"),
        failures=failures if data.failures() else "<p>No failed loads.</p>",
        quality=quality,
        amounts=amounts,
        flagged=flagged,
        trips=chart("trips"),
        revenue=chart("revenue"),
        zones_month=chart("zones_month"),
        zones_all=chart("zones_all"),
        yearly=yearly,
        performance=chart("performance"),
        data_json=data_json,
    )


def write_report(dbt: Any, warehouse: Any, out: Path, month: date | None = None) -> Path:
    out.write_text(render(collect(dbt, warehouse), month), encoding="utf-8")
    return out


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>NYC taxi trips: what is loaded</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }}
th {{ background: #f5f5f5; }}
td:first-child, th:first-child {{ text-align: left; }}
section {{ margin-bottom: 2rem; }}
</style>
<script>{plotly_js}</script>
</head>
<body>
<h1>NYC taxi trips: what is loaded</h1>
<p>Made {made_at} by <code>runner report</code> from the ledger and the models.</p>
<section id="loads"><h2>Loads</h2>{loads}
<h3>Latest failures</h3>{failures}</section>
<section id="quality"><h2>Data quality by month</h2>{quality}{amounts}
<h3>Months that stand out</h3>{flagged}</section>
<section id="data"><h2>What the data says</h2>{trips}{revenue}{zones_month}{zones_all}
<h3>Yearly totals</h3>{yearly}</section>
<section id="performance"><h2>Performance</h2>{performance}</section>
<script type="application/json" id="report-data">{data_json}</script>
</body>
</html>
"""
