"""Ingestion benchmark of the runner + dbt project on a private PostgreSQL (a report, not a test).

    python bench/run.py [--quick]

Measures, on a fresh embedded server with default durability (see bench/README.md):
  1. ingestion ratio: `Pipeline.load_month` (file on disk -> rows in the main table, dbt parse
     excluded) over a bare COPY of the same file into a fresh UNLOGGED typed table, for a
     green-size and a yellow-size month, with the phases of the ingestion and the server time
     of each statement (server log, log_min_duration_statement = 0);
  2. month 24 vs month 1: 24 consecutive green-size months loaded into one main table;
  3. the runner's peak memory: `python -m runner load` of the yellow-size month in a subprocess;
  4. diagnostics: COPY variants (md5 column, WAL) and the fixed cost of a tiny month.
Prints a report and writes bench/out/results.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from generate import generate
from isal import igzip

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
GREEN_ROWS = 3_000_000
YELLOW_ROWS = 7_600_000
FHV_ROWS = 23_143_222  # fhv 2019-01 as published (FACTS.md)
RATIO_MONTH = "2019-01"
SERIES_START = "2019-01"
COPY_READ = 1 << 20  # bytes per read, and python-isal's gzip: as the runner reads a file (runner/csvfile.py)
SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
    "work_mem",
    "maintenance_work_mem",
    "checkpoint_timeout",
    "max_wal_senders",
    "wal_compression",
    "max_parallel_maintenance_workers",
    "autovacuum",
)
DATA_STEPS = {  # statement categories (ServerLog) whose cost grows with the file, not with the warehouse
    "COPY into landing (server)",
    "repeated ids: find",
    "repeated ids: their rows, delete, index again",
    "unique index build",
    "count scan",
}
TARGETS = {"ingestion_ratio": 2.0, "ingestion_ratio_aim": 1.5, "month24_ratio": 1.1, "peak_rss_mb": 300}
BASE_TYPES = {"integer": "integer", "numeric": "numeric", "timestamp": "timestamp", "text": "text"}


def log(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


class ForeignCpu:
    """CPU seconds other processes (not this one, its children, the bench server, kernel threads) used.

    Another workload on a 2-core machine skews every timing: the report says how much there was, and
    which commands. Processes that start and end between two readings are missed: a lower bound.
    """

    def __init__(self) -> None:
        self.own = {os.getpid()}
        self.tick = os.sysconf("SC_CLK_TCK")
        self.last = self.read()

    def read(self) -> dict[int, tuple[int, str, float]]:
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat.read_text()
                name = text[text.index("(") + 1 : text.rindex(")")]
                fields = text.rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / self.tick
                found[int(stat.parent.name)] = (int(fields[1]), name, seconds)
        return found

    def since_last(self) -> tuple[float, dict[str, float]]:
        now = self.read()
        by_command: dict[str, float] = defaultdict(float)
        for pid, (ppid, name, seconds) in now.items():
            if pid in self.own or ppid in self.own or 2 in (pid, ppid):
                continue
            before = self.last.get(pid)
            used = seconds - before[2] if before else seconds
            if used > 0:
                by_command[name] += used
        self.last = now
        top = dict(sorted(by_command.items(), key=lambda item: -item[1])[:4])
        return sum(by_command.values()), top


def cpu_times() -> dict[str, float]:
    """Machine-wide CPU seconds by state (/proc/stat): iowait and steal tell I/O waits and a busy host."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    tick = os.sysconf("SC_CLK_TCK")
    return {name: int(value) / tick for name, value in zip(names, values, strict=True)}


def cpu_delta(before: dict[str, float]) -> dict[str, float]:
    after = cpu_times()
    return {key: round(after[key] - before[key], 2) for key in ("user", "system", "idle", "iowait", "steal")}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerLog:
    """New lines of the server log since the last read, as (category, seconds) per logged statement."""

    LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    DURATION = re.compile(r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*): (.*)", re.S)
    COMMENT = re.compile(r"^\s*/\*.*?\*/\s*", re.S)
    CATEGORIES = (
        ("COPY into landing (server)", re.compile(r"^copy .* from stdin", re.S)),
        ("landing table: the load's own taken", re.compile(r"_incoming\" rename to|_incoming rename to")),
        ("tables/ledger DDL", re.compile(r"nyc_taxi:prepare|create (schema|table)|comment on")),
        ("repeated ids: their rows, delete, index again", re.compile(r"nyc_taxi_later_rows")),
        ("repeated ids: find", re.compile(r"nyc_taxi_repeated_ids")),
        ("unique index build", re.compile(r"create unique index")),
        ("count scan", re.compile(r"count\(\*\) filter")),
        ("attach partition", re.compile(r"attach partition")),
        ("fast-default columns", re.compile(r"add column filename")),
        ("drop old partition", re.compile(r"^drop table if exists")),
        ("move to main schema", re.compile(r"set schema")),
        ("commit", re.compile(r"^commit")),
        ("truncate", re.compile(r"^truncate")),
        ("ledger", re.compile(r"load_ledger")),
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def read(self) -> list[tuple[str, float]]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode("utf-8", "replace")
        # only whole lines: a statement still being written is read next time
        cut = text.rfind("\n") + 1
        self.offset += len(text[:cut].encode())
        entries: list[str] = []
        for line in text[:cut].splitlines():
            if self.LINE.match(line) or not entries:
                entries.append(line)
            else:
                entries[-1] += "\n" + line
        found = []
        for entry in entries:
            match = self.DURATION.search(entry)
            if match:
                found.append((self.classify(match.group(2)), float(match.group(1)) / 1000))
        return found

    def classify(self, statement: str) -> str:
        text = self.COMMENT.sub("", statement).strip().lower()
        for name, pattern in self.CATEGORIES:
            if pattern.search(text):
                return name
        return "other statements"


class Server:
    """The benchmark's own PostgreSQL in a /tmp folder: runner.embedded as the runner starts it
    (`embedded`: its SERVER_SETTINGS), or with PostgreSQL's defaults for every setting (`defaults`)."""

    def __init__(self, kind: str = "embedded") -> None:
        from runner.embedded import EmbeddedPostgres

        self.folder = Path(tempfile.mkdtemp(prefix="taxi-bench-", dir="/tmp"))
        self.folder.chmod(0o755)  # as root the server runs as postgres, which must enter it
        settings = {} if kind == "defaults" else None  # None: the runner's own
        self.pg = EmbeddedPostgres(data_dir=self.folder / "pgdata", port=free_port(), settings=settings)
        self.kind = kind
        self.admin: Any = None

    def start(self, settings: list[str]) -> None:
        """Start; with `name=value` settings (experiments only), set them and restart."""
        self.pg.start()
        self.admin = self.pg.connect()
        self.admin.autocommit = True
        if settings:
            for setting in settings:
                name, _, value = setting.partition("=")
                if not re.fullmatch(r"[a-z_]+", name):
                    raise SystemExit(f"--set {setting}: not a setting name")
                self.execute(f"alter system set {name} = %s", (value,))
            self.admin.close()
            self.pg.stop()
            self.pg.start()
            self.admin = self.pg.connect()
            self.admin.autocommit = True
        # every statement's duration goes to the server log: the per-statement breakdown reads it
        self.execute(f"alter database {self.pg.dbname} set log_min_duration_statement = 0")
        self.log = ServerLog(self.pg.data_dir / "server.log")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.admin is not None:
                self.admin.close()
        try:
            self.pg.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self, query: str, params: tuple = ()) -> list[tuple]:
        with self.admin.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def postmaster_pid(self) -> int:
        return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])

    def value(self, query: str) -> Any:
        return self.execute(query)[0][0]

    def drop_schemas(self) -> None:
        from runner.project import load_project

        schema = load_project().schema
        # the models' schemas too: a mart left from another section holds months this one never loaded
        for name in (schema, schema + "_landing", schema + "_staging", schema + "_core", "bench_bare"):
            self.execute(f'drop schema if exists "{name}" cascade')

    def checkpoint(self) -> None:
        """CHECKPOINT, and wait until the statistics count it (the checkpointer reports it a bit later)."""
        query = "select checkpoints_req from pg_stat_bgwriter"
        before = self.value(query)
        self.execute("checkpoint")
        deadline = time.monotonic() + 5
        while self.value(query) == before and time.monotonic() < deadline:
            time.sleep(0.02)

    def counters(self) -> dict[str, float]:
        row = self.execute(
            "select pg_current_wal_lsn() - '0/0'::pg_lsn, checkpoints_timed + checkpoints_req,"
            " (select coalesce(sum(autovacuum_count + autoanalyze_count), 0) from pg_stat_all_tables)"
            " from pg_stat_bgwriter"
        )[0]
        return {"wal_bytes": float(row[0]), "checkpoints": float(row[1]), "autovacuum_runs": float(row[2])}

    def settings(self) -> dict[str, str]:
        return {name: self.value(f"show {name}") for name in SETTINGS}


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


# --- the runner, timed --------------------------------------------------------------------------------


class Probe:
    """Wall time of the pipeline's phases, and the server time of what each phase ran."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.reset()

    def reset(self) -> None:
        self.server.log.read()  # skip what came before
        self.phases: dict[str, float] = defaultdict(float)
        self.statements: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                self.phases[phase] += time.monotonic() - started
                for category, seconds in self.server.log.read():
                    self.statements[phase][category] += seconds

        return timed

    def snapshot(self, total: float) -> dict[str, Any]:
        phases = dict(self.phases)
        phases["other (Python between phases)"] = max(0.0, total - sum(phases.values()))
        statements = {phase: dict(found) for phase, found in self.statements.items()}
        for phase, found in statements.items():
            found["(client side: dbt/Python/network)"] = max(
                0.0, phases.get(phase, 0.0) - sum(found.values())
            )
        return {"phases": phases, "statements": statements}


def build_pipeline(source: Path, cache_dir: Path, server: Server) -> tuple[Any, Probe]:
    """The pipeline exactly as runner/cli/loads.py `_open_pipeline` assembles it, with its phases
    timed from outside."""
    import runner.pipeline as pipeline_module
    from runner.dbt import Dbt
    from runner.pipeline import Pipeline, QuietReporter, Settings
    from runner.project import load_project
    from runner.warehouse import Warehouse

    project = load_project()
    settings = Settings(source=str(source), cache_dir=cache_dir, force=True)
    pipeline = Pipeline(
        project=project,
        settings=settings,
        warehouse=Warehouse.for_project(project, copy_streams=settings.copy_streams),
        dbt=Dbt(project_dir=project.root, profiles_dir=project.root / "profiles"),
        reporter=QuietReporter(),
    )
    probe = Probe(server)
    warehouse, dbt = pipeline.warehouse, pipeline.dbt
    warehouse.land = probe.wrap("COPY into landing (runner)", warehouse.land)
    warehouse.current_loads = probe.wrap("ledger reads (runner)", warehouse.current_loads)
    warehouse.load = probe.wrap("ledger reads (runner)", warehouse.load)
    dbt.build = probe.wrap("dbt build: merge", dbt.build)
    dbt.run_operation = probe.wrap("dbt run-operation: begin load", dbt.run_operation)
    pipeline_module.fetch = probe.wrap("fetch: sha256 of the file", pipeline_module.fetch)
    pipeline_module.read_header = probe.wrap("header read", pipeline_module.read_header)
    return pipeline, probe


def parse_cost(pipeline: Any) -> dict[str, float]:
    """dbt's parse, paid once per process: the first dbt call minus a second identical one."""
    from runner.dbt import Dbt

    command = ["ls", "--select", "green_tripdata", "--output", "name"]
    started = time.monotonic()
    pipeline.dbt.invoke(command)
    first = time.monotonic() - started
    started = time.monotonic()
    pipeline.dbt.invoke(command)
    again = time.monotonic() - started
    # a second Dbt finds the partial-parse file the first one wrote, like every later CLI run
    other = Dbt(project_dir=pipeline.dbt.project_dir, profiles_dir=pipeline.dbt.profiles_dir)
    started = time.monotonic()
    other.invoke(command)
    warm = time.monotonic() - started
    return {"cold_full_parse": first - again, "warm_partial_parse": warm - again, "ls_after_parse": again}


def ingest(server: Server, pipeline: Any, probe: Probe, taxi: str, month: str) -> dict[str, Any]:
    """One timed load_month, on a clean checkpoint; the ledger's counts and the server's counters."""
    spec = pipeline.project.taxi(taxi)
    server.checkpoint()
    before = server.counters()
    probe.reset()
    started, cpu = time.monotonic(), cpu_times()
    outcome = pipeline.load_month(spec, pipeline.project.month(month))
    seconds = time.monotonic() - started
    machine_cpu = cpu_delta(cpu)
    if outcome.failed:
        raise RuntimeError(f"{taxi} {month} failed to load: {outcome.message}")
    ledger = pipeline.warehouse.load(outcome.load_id) or {}
    return {
        "seconds": seconds,
        "status": outcome.status,
        "ledger": {
            key: ledger.get(key)
            for key in (
                "rows_in_file",
                "rows_loaded",
                "exact_repeats",
                "same_id_variants",
                "pickups_outside_month",
            )
        },
        "server": counter_delta(before, server.counters()),
        "machine_cpu": machine_cpu,
        **probe.snapshot(seconds),
    }


# --- bare COPY and its variants ------------------------------------------------------------------------


def column_types(taxi: str) -> list[tuple[str, str]]:
    """The landing table's CSV columns and types (macros/common/tripdata_type.sql, default mapping)."""
    sources = yaml.safe_load((ROOT / "models" / "tripdata" / "_landing__sources.yml").read_text())
    (landing,) = (s for s in sources["sources"] if s["name"] == "landing")
    (table,) = (t for t in landing["tables"] if t["name"] == f"{taxi}_tripdata")
    return [(c["name"], BASE_TYPES[c["data_type"]]) for c in table["columns"]]


def unique_row_id_sql(taxi: str) -> str:
    """The landing table's generated column, as dbt compiles it (macros/common/unique_row_id.sql)."""
    pickup, dropoff = (
        f"{'lpep' if taxi == 'green' else 'tpep'}_{what}_datetime" for what in ("pickup", "dropoff")
    )
    parts = []
    for column, kind in (
        ("vendorid", "i"),
        (pickup, "t"),
        (dropoff, "t"),
        ("pulocationid", "i"),
        ("dolocationid", "i"),
        ("fare_amount", "n"),
        ("trip_distance", "n"),
    ):
        text = {
            "t": f"cast(case when {column} >= '1900-01-01' and {column} < '2040-01-01'"
            f" then cast(date_part('epoch', {column}) * 1000000 as bigint)"
            f" else cast(extract(epoch from {column}) * 1000000 as bigint) end as text)",
            "n": f"cast(trim_scale({column}) as text)",
            "i": f"cast({column} as text)",
        }[kind]
        parts.append(f"coalesce({text}, '\\N')")
    return "md5(" + " || '|' || ".join(parts) + ")"


def timed_copy(
    server: Server,
    path: Path,
    taxi: str,
    *,
    logged: bool = False,
    generated: bool = False,
    freeze: bool = False,
) -> dict[str, Any]:
    """COPY the file into a table created fresh, streamed like the runner streams it. Only the COPY
    (and, with freeze, the truncate in its transaction) and its commit are timed."""
    columns = column_types(taxi)
    ddl = ", ".join(f"{name} {kind}" for name, kind in columns)
    if generated:
        expression = unique_row_id_sql(taxi)
        ddl += f', unique_row_id text collate "C" not null generated always as ({expression}) stored'
    names = ", ".join(name for name, _ in columns)
    table = "bench_bare.copy_target"
    server.execute("create schema if not exists bench_bare")
    server.execute(f"drop table if exists {table}")
    server.execute(f"create {'' if logged else 'unlogged '}table {table} ({ddl})")
    server.checkpoint()
    before = server.counters()
    connection = server.pg.connect()
    try:
        started = time.monotonic()
        with (
            connection.cursor() as cursor,
            path.open("rb") as raw,
            igzip.IGzipFile(fileobj=raw, mode="rb") as stream,
        ):
            if freeze:
                cursor.execute(f"truncate {table}")
            options = "format csv, header true" + (", freeze true" if freeze else "")
            cursor.copy_expert(f"copy {table} ({names}) from stdin with ({options})", stream, size=COPY_READ)
            rows = cursor.rowcount
        connection.commit()
        seconds = time.monotonic() - started
    finally:
        connection.close()
    size = server.value(f"select pg_total_relation_size('{table}')")
    server.execute(f"drop table {table}")
    return {
        "seconds": seconds,
        "rows": rows,
        "table_bytes": size,
        "server": counter_delta(before, server.counters()),
    }


def decompress_only(path: Path) -> float:
    started = time.monotonic()
    with path.open("rb") as raw, igzip.IGzipFile(fileobj=raw, mode="rb") as stream:
        while stream.read(COPY_READ):
            pass
    return time.monotonic() - started


# --- the sections ---------------------------------------------------------------------------------------


def ratio_section(server: Server, pipeline: Any, probe: Probe, taxi: str, path: Path, repeats: int) -> dict:
    log(f"== ingestion ratio, {taxi} ({repeats} repeat(s))")
    bare, loads = [], []
    for i in range(repeats):
        server.drop_schemas()
        bare.append(timed_copy(server, path, taxi))
        log(f"   bare UNLOGGED COPY #{i + 1}: {bare[-1]['seconds']:.2f} s")
        server.drop_schemas()  # each ingestion is a month's first load into an empty warehouse
        loads.append(ingest(server, pipeline, probe, taxi, RATIO_MONTH))
        log(f"   ingestion #{i + 1}: {loads[-1]['seconds']:.2f} s ({loads[-1]['status']})")
    bare_median = median([b["seconds"] for b in bare])
    load_median = median([r["seconds"] for r in loads])
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "bare_copy_seconds": [b["seconds"] for b in bare],
        "ingestion_seconds": [r["seconds"] for r in loads],
        "bare_copy_median": bare_median,
        "ingestion_median": load_median,
        "ratio": load_median / bare_median,
        "bare_copy_runs": bare,
        "ingestion_runs": loads,
        "phase_medians": median_breakdown([r["phases"] for r in loads]),
        "statement_medians": {
            phase: median_breakdown([r["statements"].get(phase, {}) for r in loads])
            for phase in sorted({p for r in loads for p in r["statements"]})
        },
    }


def median_breakdown(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = {key for sample in samples for key in sample}
    medians = {key: median([sample.get(key, 0.0) for sample in samples]) or 0.0 for key in keys}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


def linked_months(green_file: Path, count: int, folder: Path) -> list[Any]:
    """`count` green months from SERIES_START in `folder` (a runner source): the one generated file,
    hard-linked under each month's file name (so its loads need allow_other_month)."""
    from runner.project import Month

    months = [Month.parse(SERIES_START)]
    while len(months) < count:
        months.append(months[-1].next())
    for month in months:
        target = folder / "green" / f"green_tripdata_{month}.csv.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and os.path.samefile(target, green_file)):
            target.unlink(missing_ok=True)
            os.link(green_file, target)
    return months


def series_section(server: Server, pipeline: Any, probe: Probe, green_file: Path, count: int) -> dict:
    folder = OUT / "series"
    months = linked_months(green_file, count, folder)
    pipeline.settings = type(pipeline.settings)(  # one file hard-linked under the months' names
        source=str(folder), cache_dir=pipeline.settings.cache_dir, force=True, allow_other_month=True
    )
    log(f"== month {count} vs month 1 ({count} green months, {months[0]} .. {months[-1]})")
    server.drop_schemas()
    server.checkpoint()  # then no checkpoint on purpose: a backfill's own WAL triggers them
    runs = []
    for month in months:
        before = server.counters()
        probe.reset()
        started, cpu = time.monotonic(), cpu_times()
        outcome = pipeline.load_month(pipeline.project.taxi("green"), month)
        seconds = time.monotonic() - started
        machine_cpu = cpu_delta(cpu)
        if outcome.failed:
            raise RuntimeError(f"green {month} failed to load: {outcome.message}")
        run = {
            "month": str(month),
            "seconds": seconds,
            "status": outcome.status,
            "server": counter_delta(before, server.counters()),
            "machine_cpu": machine_cpu,
            **probe.snapshot(seconds),
        }
        # server time of the steps whose work is proportional to the file; the rest is per-month overhead
        run["data_steps_seconds"] = sum(
            seconds
            for found in run["statements"].values()
            for step, seconds in found.items()
            if step in DATA_STEPS
        )
        run["fixed_steps_seconds"] = seconds - run["data_steps_seconds"]
        runs.append(run)
        log(f"   {month}: {seconds:.2f} s")
    seconds = [r["seconds"] for r in runs]
    head, tail = median(seconds[:3]), median(seconds[-3:])
    fixed = [r["fixed_steps_seconds"] for r in runs]
    data = [r["data_steps_seconds"] for r in runs]
    return {
        "fixed_steps_median_first3": median(fixed[:3]),
        "fixed_steps_median_last3": median(fixed[-3:]),
        "data_steps_median_first3": median(data[:3]),
        "data_steps_median_last3": median(data[-3:]),
        "note": f"one generated green month ({green_file.name}, pickups in {SERIES_START}) hard-linked under "
        f"the {count} file names: same bytes for every month",
        "months": [r["month"] for r in runs],
        "seconds": seconds,
        "first": seconds[0],
        "last": seconds[-1],
        "ratio_last_first": seconds[-1] / seconds[0],
        "median_first3": head,
        "median_last3": tail,
        "ratio_median_last3_first3": tail / head,
        "runs": runs,
    }


def jobs_section(server: Server, green_file: Path, count: int, cache_dir: Path) -> dict:
    """`runner backfill --jobs 1` and `--jobs 2` over the same `count` green months (each a first load)."""
    folder = OUT / "jobs"
    months = linked_months(green_file, count, folder)
    log(f"== --jobs 1 vs --jobs 2: runner backfill of {count} green months")
    runs = {}
    for jobs in (1, 2):
        server.drop_schemas()
        server.checkpoint()
        command = [
            *(sys.executable, "-m", "runner", "backfill", "--taxi", "green"),
            *("--start", str(months[0]), "--end", str(months[-1]), "--source", str(folder)),
            *("--jobs", str(jobs), "--json", "--allow-other-month"),  # one file, hard-linked
        ]
        started, cpu = time.monotonic(), cpu_times()
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "RUNNER_CACHE_DIR": str(cache_dir)},
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        runs[jobs] = {
            "command": " ".join(command),
            "seconds": seconds,
            "months_seconds": summary["months_seconds"],
            "models_seconds": summary["models_seconds"],
            "machine_cpu": cpu_delta(cpu),
        }
        log(f"   --jobs {jobs}: {seconds:.1f} s (months {summary['months_seconds']} s)")
    return {
        "months": [str(m) for m in months],
        "runs": runs,
        "speedup_months": runs[1]["months_seconds"] / runs[2]["months_seconds"],
        "speedup_whole": runs[1]["seconds"] / runs[2]["seconds"],
    }


def vm_hwm_kb(pid: int) -> int:
    """A running process's peak resident set (VmHWM) in kB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def memory_section(server: Server, source: Path, month: str, cache_dir: Path, taxi: str = "yellow") -> dict:
    log(f"== runner peak memory: python -m runner load --taxi {taxi} --month {month}")
    server.drop_schemas()
    server.checkpoint()
    command = [
        sys.executable,
        "-m",
        "runner",
        "load",
        "--taxi",
        taxi,
        "--month",
        month,
        "--source",
        str(source),
    ]
    output = OUT / f"memory-run-{taxi}.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    with output.open("w") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUNNER_CACHE_DIR": str(cache_dir)},
        )
        try:
            # The peak is the child's VmHWM, read until it exits. Not wait4's ru_maxrss: Linux keeps
            # in it the peak of the image the child was forked from (this process, which may have
            # generated a month in memory) across the exec, so it reported this process's size.
            peak_kb = 0
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                peak_kb = max(peak_kb, vm_hwm_kb(process.pid))
                time.sleep(0.05)
            process.returncode = os.waitstatus_to_exitcode(status)
        except BaseException:
            process.kill()
            process.wait()
            raise
    seconds = time.monotonic() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "command": " ".join(command),
        "exit_code": process.returncode,
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "wait4_maxrss_mb": usage.ru_maxrss / 1024,  # includes the forked image's peak (see above)
        "rusage_children_maxrss_mb": children / 1024,
        "rusage_children_maxrss_mb_before": before / 1024,
        "output": str(output),
    }


def diagnostics_section(server: Server, pipeline: Any, probe: Probe, green_file: Path, repeats: int) -> dict:
    log(f"== diagnostics: COPY variants on the green file ({repeats} repeat(s)), tiny month")
    variants = {
        "unlogged, typed (= bare baseline)": {},
        "unlogged + md5 generated column": {"generated": True},
        "logged, typed, truncate+FREEZE": {"logged": True, "freeze": True},
        "logged + md5 column, truncate+FREEZE (= runner's COPY)": {
            "logged": True,
            "generated": True,
            "freeze": True,
        },
    }
    runs: dict[str, list[dict]] = defaultdict(list)
    server.drop_schemas()
    for _ in range(repeats):
        for name, options in variants.items():
            runs[name].append(timed_copy(server, green_file, "green", **options))
    copy = {
        name: {
            "median_seconds": median([r["seconds"] for r in found]),
            "seconds": [r["seconds"] for r in found],
            "wal_mb": median([r["server"]["wal_bytes"] for r in found]) / 1e6,
            "table_mb": found[0]["table_bytes"] / 1e6,
        }
        for name, found in runs.items()
    }
    decompress = [decompress_only(green_file) for _ in range(repeats)]
    # the fixed cost of a month: the 266 real yellow rows, through the same pipeline
    real = ROOT / "data" / "tripdata"
    saved = pipeline.settings
    pipeline.settings = type(saved)(source=str(real), cache_dir=saved.cache_dir, force=True)
    tiny = []
    try:
        for _ in range(repeats):
            server.drop_schemas()
            tiny.append(ingest(server, pipeline, probe, "yellow", "2020-07"))
    finally:
        pipeline.settings = saved
    return {
        "copy_variants": copy,
        "python_gunzip_only_seconds": decompress,
        "python_gunzip_only_median": median(decompress),
        "tiny_month": {
            "file": "data/tripdata/yellow/yellow_tripdata_2020-07.csv.gz (266 rows)",
            "seconds": [t["seconds"] for t in tiny],
            "median_seconds": median([t["seconds"] for t in tiny]),
            "phase_medians": median_breakdown([t["phases"] for t in tiny]),
        },
    }


# --- report ----------------------------------------------------------------------------------------------


def machine(server: Server) -> dict[str, Any]:
    import dbt.version
    import psycopg2

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": nproc,
        "cpu": _cpu_model(),
        "memory_gib": round(memory, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": server.value("select version()"),
        "dbt_core": dbt.version.__version__,
        "psycopg2": psycopg2.__version__.split()[0],
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def wal(runs: list[dict[str, Any]]) -> float:
    return (median([run["server"]["wal_bytes"] for run in runs]) or 0.0) / 1e6


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def report(results: dict[str, Any]) -> str:
    lines = [f"NYC taxi ingestion benchmark — {results['started_at']}"]
    m = results["machine"]
    lines += [
        f"machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']};"
        f" Python {m['python']}, "
        f"dbt-core {m['dbt_core']}, psycopg2 {m['psycopg2']}",
        f"server:  {m['postgres']}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in results["server_settings"].items()),
        f"         (fresh server: {results['server_kind']}; fsync and synchronous_commit on; "
        "initdb without --no-sync; log_min_duration_statement=0 for the statement breakdown;"
        " CHECKPOINT before each timed sample)",
    ]
    if results["server_settings_changed"]:
        lines.append(
            "EXPERIMENT: settings changed from the defaults: " + ", ".join(results["server_settings_changed"])
        )
    lines.append("")
    parse = results.get("dbt_parse")
    if parse:
        lines += [
            f"dbt parse (once per process, excluded from ingestion): cold {fmt_s(parse['cold_full_parse'])}, "
            f"with the partial-parse file {fmt_s(parse['warm_partial_parse'])}",
            "",
        ]
    for taxi in ("green", "yellow", "fhv"):
        r = results["ratio"].get(taxi)
        if not r:
            continue
        rows = r["ingestion_runs"][0]["ledger"]
        lines += [
            f"1. ingestion ratio, {taxi}: {rows['rows_in_file']:,} rows, {r['file_bytes'] / 1e6:.0f} MB gz",
            f"   bare COPY into UNLOGGED typed table: median {fmt_s(r['bare_copy_median'])}  samples "
            + ", ".join(f"{s:.2f}" for s in r["bare_copy_seconds"]),
            f"   ingestion (Pipeline.load_month):     median {fmt_s(r['ingestion_median'])}  samples "
            + ", ".join(f"{s:.2f}" for s in r["ingestion_seconds"]),
            f"   ratio {r['ratio']:.2f}x  ({verdict(r['ratio'] <= TARGETS['ingestion_ratio'])} "
            f"<= {TARGETS['ingestion_ratio']}x; aim {TARGETS['ingestion_ratio_aim']}x)",
            f"   ledger: {rows['rows_loaded']:,} rows loaded, {rows['exact_repeats']} exact repeats and "
            f"{rows['same_id_variants']} same-id variants collapsed, {rows['pickups_outside_month']} pickups "
            "outside the month",
            f"   WAL written per ingestion: {wal(r['ingestion_runs']):.0f} MB"
            f" (bare COPY: {wal(r['bare_copy_runs']):.0f} MB); "
            f"checkpoints during ingestion: "
            + ", ".join(f"{x['server']['checkpoints']:.0f}" for x in r["ingestion_runs"]),
            "   where the time goes (medians):",
        ]
        for phase, seconds in r["phase_medians"].items():
            lines.append(f"     {phase:<42} {seconds:7.2f} s")
            for category, secs in r["statement_medians"].get(phase, {}).items():
                if secs >= 0.01:
                    lines.append(f"         {category:<38} {secs:7.2f} s")
        lines.append("")
    s = results.get("series")
    if s:
        lines += [
            f"2. month {len(s['seconds'])} vs month 1 (green size; {s['note']})",
            f"   month 1 {fmt_s(s['first'])}, month {len(s['seconds'])} {fmt_s(s['last'])}: ratio "
            f"{s['ratio_last_first']:.2f}x; median of months 1-3 {fmt_s(s['median_first3'])} vs last 3 "
            f"{fmt_s(s['median_last3'])}: ratio {s['ratio_median_last3_first3']:.2f}x "
            f"({verdict(s['ratio_median_last3_first3'] <= TARGETS['month24_ratio'])}"
            f" <= {TARGETS['month24_ratio']}x)",
            "   all months: " + ", ".join(f"{x:.2f}" for x in s["seconds"]),
            f"   split (medians, first 3 -> last 3): file-proportional statements (COPY, index, scans) "
            f"{fmt_s(s['data_steps_median_first3'])} -> {fmt_s(s['data_steps_median_last3'])};"
            " everything else "
            f"(dbt, catalog, attach, ledger) {fmt_s(s['fixed_steps_median_first3'])} -> "
            f"{fmt_s(s['fixed_steps_median_last3'])}",
            "   checkpoints during each month: "
            + " ".join(f"{r['server']['checkpoints']:.0f}" for r in s["runs"]),
            "",
        ]
    j = results.get("jobs")
    if j:
        one, two = j["runs"][1], j["runs"][2]
        lines += [
            f"2b. --jobs 2 over --jobs 1: runner backfill of {len(j['months'])} green months, first loads",
            f"   --jobs 1: months {fmt_s(one['months_seconds'])}, whole {fmt_s(one['seconds'])};"
            f" --jobs 2: months {fmt_s(two['months_seconds'])}, whole {fmt_s(two['seconds'])}",
            f"   speed-up: months {j['speedup_months']:.2f}x, whole command {j['speedup_whole']:.2f}x",
            "",
        ]
    for key, what in (("memory", "yellow-size month"), ("memory_fhv", "fhv month")):
        mem = results.get(key)
        if mem:
            lines += [
                f"3. runner peak memory ({what}, `runner load` in a subprocess,"
                f" exit {mem['exit_code']}, "
                f"{mem['seconds']:.1f} s end to end incl. parse and models):"
                f" {mem['peak_rss_mb']:.0f} MB peak RSS "
                f"({verdict(mem['peak_rss_mb'] < TARGETS['peak_rss_mb'])} < {TARGETS['peak_rss_mb']} MB)",
                "",
            ]
    d = results.get("diagnostics")
    if d:
        lines.append("4. diagnostics (green file)")
        for name, v in d["copy_variants"].items():
            lines.append(
                f"   COPY {name:<58} {v['median_seconds']:6.2f} s  WAL {v['wal_mb']:5.0f} MB  "
                f"table {v['table_mb']:5.0f} MB"
            )
        lines.append(
            f"   Python gunzip alone (no database)                              "
            f"{d['python_gunzip_only_median']:6.2f} s"
        )
        t = d["tiny_month"]
        lines.append(
            "   fixed cost of a month (266-row file through load_month):"
            f" median {fmt_s(t['median_seconds'])}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in t["phase_medians"].items() if v >= 0.01)
        )
        lines.append("")
    lines.append("machine CPU per section (s): other processes / iowait / steal, of wall x cores:")
    for name, v in results["sections"].items():
        top = ", ".join(f"{command} {cpu:.1f}" for command, cpu in v["foreign_top"].items() if cpu >= 0.5)
        lines.append(
            f"   {name:<14} wall {v['seconds']:6.1f}  other {v['foreign_cpu_seconds']:5.1f}"
            f"  iowait {v['machine_cpu']['iowait']:5.1f}  steal {v['machine_cpu']['steal']:5.1f}"
            + (f"  ({top})" if top else "")
        )
    busy = [
        name for name, v in results["sections"].items() if v["foreign_cpu_seconds"] >= 0.05 * v["seconds"]
    ]
    if busy:
        lines.append(f"WARNING: other processes competed for the CPU during: {', '.join(busy)}")
    lines.append(f"total benchmark time {results['total_seconds'] / 60:.1f} min; JSON: {results['json']}")
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the server is stopped and its folder deleted either way."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def point_environment_at(server: Server, folder: Path) -> None:
    for key in [key for key in os.environ if key.startswith("PG") or key == "DBT_TARGET"]:
        del os.environ[key]
    os.environ.update(server.pg.env())
    os.environ["TAXI_SCHEMA"] = "nyc_taxi"
    # dbt's artifacts and logs go to the run's folder, not the project's target/ and logs/
    os.environ["DBT_TARGET_PATH"] = str(folder / "dbt-target")
    os.environ["DBT_LOG_PATH"] = str(folder / "dbt-logs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one sample per measurement")
    parser.add_argument(
        "--months", type=int, default=24, help="months in the month-N-vs-1 series (default 24)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["green", "yellow", "fhv", "series", "jobs", "memory", "diagnostics"],
        help="leave a section out",
    )
    parser.add_argument("--green-rows", type=int, default=GREEN_ROWS, help="rows of the green-size month")
    parser.add_argument("--yellow-rows", type=int, default=YELLOW_ROWS, help="rows of the yellow-size month")
    parser.add_argument("--fhv-rows", type=int, default=FHV_ROWS, help="rows of the fhv month")
    parser.add_argument(
        "--server",
        choices=["embedded", "defaults"],
        default="embedded",
        help="the embedded server as the runner starts it, or with PostgreSQL's default settings",
    )
    parser.add_argument(
        "--no-repeats", action="store_true", help="months without repeated ids (default: a few hundred)"
    )
    parser.add_argument("--jobs-months", type=int, default=4, help="months in the --jobs 1 vs 2 section")
    parser.add_argument("--data", type=Path, default=OUT / "data", help="generated files (cached)")
    parser.add_argument("--json", type=Path, default=OUT / "results.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="experiments only: a server setting other than the defaults (ALTER SYSTEM, restart)",
    )
    args = parser.parse_args(argv)
    green_repeats, yellow_repeats = (1, 1) if args.quick else (3, 2)
    begun = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "targets": TARGETS,
        "json": str(args.json),
        "server_settings_changed": args.set,
        "server_kind": args.server,
        "repeats": not args.no_repeats,
        "ratio": {},
    }
    OUT.mkdir(parents=True, exist_ok=True)

    log("== data")
    files = {}
    data = args.data / "no-repeats" if args.no_repeats else args.data
    needed = {
        "green": True,  # the series, jobs and diagnostics sections load it too
        "yellow": not {"yellow", "memory"} <= set(args.skip),
        "fhv": "fhv" not in args.skip,
    }
    for taxi, rows in (("green", args.green_rows), ("yellow", args.yellow_rows), ("fhv", args.fhv_rows)):
        if not needed[taxi]:
            continue
        made = generate(taxi, RATIO_MONTH, rows, data, repeats=not args.no_repeats)
        files[taxi] = made.path
        how = "cached" if made.cached else f"generated in {made.seconds:.1f} s"
        log(f"   {made.path} ({rows:,} rows, {made.bytes / 1e6:.0f} MB, {how})")
        results.setdefault("data", {})[taxi] = {
            "file": str(made.path),
            "rows": rows,
            "bytes": made.bytes,
            "cached": made.cached,
            "generate_seconds": made.seconds,
            "special_rows": made.counts,
        }

    server = Server(args.server)
    work = server.folder / "work"
    foreign = ForeignCpu()
    results["sections"] = {}

    def section(name: str, run: Callable[[], Any]) -> Any:
        foreign.since_last()
        started, cpu = time.monotonic(), cpu_times()
        value = run()
        used, top = foreign.since_last()
        results["sections"][name] = {
            "seconds": time.monotonic() - started,
            "foreign_cpu_seconds": used,
            "foreign_top": top,
            "machine_cpu": cpu_delta(cpu),
        }
        return value

    try:
        with terminate_as_interrupt():
            log(f"== server: {server.pg.data_dir} on port {server.pg.port}")
            server.start(args.set)
            foreign.own.add(server.postmaster_pid())
            work.mkdir()
            point_environment_at(server, work)
            results["server_settings"] = server.settings()
            results["machine"] = machine(server)
            pipeline, probe = build_pipeline(data, work / "cache", server)
            try:
                results["dbt_parse"] = section("dbt parse", lambda: parse_cost(pipeline))
                for taxi, repeats in (("green", green_repeats), ("yellow", yellow_repeats), ("fhv", 1)):
                    if taxi not in args.skip:
                        results["ratio"][taxi] = section(
                            f"ratio {taxi}",
                            lambda t=taxi, r=repeats: ratio_section(server, pipeline, probe, t, files[t], r),
                        )
                if "series" not in args.skip:
                    results["series"] = section(
                        "series",
                        lambda: series_section(server, pipeline, probe, files["green"], args.months),
                    )
                if "diagnostics" not in args.skip:
                    results["diagnostics"] = section(
                        "diagnostics",
                        lambda: diagnostics_section(server, pipeline, probe, files["green"], green_repeats),
                    )
            finally:
                pipeline.warehouse.close()
            if "jobs" not in args.skip:
                results["jobs"] = section(
                    "jobs", lambda: jobs_section(server, files["green"], args.jobs_months, work / "cache")
                )
            if "memory" not in args.skip:
                results["memory"] = section(
                    "memory", lambda: memory_section(server, data, RATIO_MONTH, work / "cache")
                )
            if "fhv" not in args.skip:
                results["memory_fhv"] = section(
                    "memory fhv", lambda: memory_section(server, data, RATIO_MONTH, work / "cache", "fhv")
                )
    except BaseException as error:
        results["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        log("== stopping the server and deleting its folder")
        server.stop()
        results["total_seconds"] = time.monotonic() - begun
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
