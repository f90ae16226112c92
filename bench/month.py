"""A month's whole `runner load` against a bare COPY of its file, and that cost with 24 months loaded.

    .venv/bin/python bench/month.py [--rows 3000000] [--history 23] [--samples 2]

Generates a green month (bench/generate.py), starts a fresh private PostgreSQL (bench/run.py's
Server: the embedded server, PostgreSQL's default settings) and measures, in the same run:
  1. a bare COPY of the file into a fresh UNLOGGED typed table, streamed as the runner streams it;
  2. the command a user runs, `runner backfill --force --json` of that one month (Python and dbt
     starting, the ingestion, the models build and its tests), with only that month loaded: wall
     time, split by the command's own summary into the month's load and the models build;
  3. the same once --history more months are loaded (the same file, hard-linked under other
     months' names: the history's size is what matters, not its values).
Reports the ratios (targets: the whole load within 3.0x the bare COPY; with 24 months loaded
within 1.1x of the same reload with one). Reports figures; asserts nothing. Results also go to
bench/out/month.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

from generate import generate  # noqa: E402
from run import Server, point_environment_at, terminate_as_interrupt, timed_copy  # noqa: E402

from runner.project import load_project, month_range  # noqa: E402

MONTH = "2021-01"  # the month measured; the history is the months before it


def backfill(source: Path, start: str, end: str, folder: Path, force: bool = False) -> dict:
    """`runner backfill` as a user runs it; its wall time and its JSON summary."""
    command = [sys.executable, "-m", "runner", "backfill", "--taxi", "green", "--start", start, "--end", end]
    command += ["--source", str(source), "--json", "--quiet", *(["--force"] if force else [])]
    command += ["--allow-other-month"]  # the history is one file hard-linked under other months' names
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "RUNNER_CACHE_DIR": str(folder / "cache")},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"runner backfill failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.splitlines()[-1])
    return {"command_seconds": seconds, **{k: summary[k] for k in ("months_seconds", "models_seconds")}}


def reloads(server: Server, source: Path, folder: Path, samples: int) -> list[dict]:
    runs = []
    for _ in range(samples):
        server.checkpoint()
        runs.append(backfill(source, MONTH, MONTH, folder, force=True))
    return runs


def med(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--history", type=int, default=23, help="months loaded before the second measure")
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()

    project = load_project()
    data = BENCH / "out" / "data"
    path = generate("green", MONTH, args.rows, data).path
    history = month_range(project.month("2019-01"), project.month(MONTH))[-args.history - 1 : -1]
    for month in history:  # the same bytes under the history's names
        link = data / "green" / project.taxi("green").filename(month)
        if not link.exists():
            os.link(path, link)

    server = Server()
    results: dict = {"rows": args.rows, "history_months": len(history), "nproc": os.cpu_count()}
    try:
        with terminate_as_interrupt():
            server.start([])
            point_environment_at(server, server.folder)
            results["settings"] = server.settings()
            results["bare_copy_seconds"] = [timed_copy(server, path, "green")["seconds"] for _ in range(2)]
            backfill(data, MONTH, MONTH, server.folder)  # the first load: tables and models made
            results["one_month"] = reloads(server, data, server.folder, args.samples)
            if history:
                started = time.monotonic()
                backfill(data, str(history[0]), str(history[-1]), server.folder)
                results["history_load_seconds"] = time.monotonic() - started
                results["with_history"] = reloads(server, data, server.folder, args.samples)
                results["bare_copy_seconds"].append(timed_copy(server, path, "green")["seconds"])
    finally:
        server.stop()

    copy = statistics.median(results["bare_copy_seconds"])
    one = results["one_month"]
    print(f"green {MONTH}, {args.rows:,} rows, {os.cpu_count()} cores")
    samples = ", ".join(f"{s:.1f}" for s in results["bare_copy_seconds"])
    print(f"bare UNLOGGED COPY: median {copy:.1f} s ({samples})")
    print(
        f"whole `runner backfill --force` of the month: median {med(one, 'command_seconds'):.1f} s"
        f" = {med(one, 'command_seconds') / copy:.2f}x the bare COPY (target <= 3.0x);"
        f" the month's load {med(one, 'months_seconds'):.1f} s ({med(one, 'months_seconds') / copy:.2f}x),"
        f" the models build {med(one, 'models_seconds'):.1f} s, the rest (Python, dbt's start) "
        f"{med(one, 'command_seconds') - med(one, 'months_seconds') - med(one, 'models_seconds'):.1f} s"
    )
    if history:
        more = results["with_history"]
        ratio = med(more, "command_seconds") / med(one, "command_seconds")
        results["history_ratio"] = ratio
        print(
            f"with {len(history) + 1} months loaded: median {med(more, 'command_seconds'):.1f} s ="
            f" {ratio:.2f}x the reload with one month loaded (target <= 1.1x); models build"
            f" {med(more, 'models_seconds'):.1f} s against {med(one, 'models_seconds'):.1f} s"
        )
    results["whole_load_ratio"] = med(one, "command_seconds") / copy
    out = BENCH / "out" / "month.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
