"""Backfill throughput with 1 and 2 jobs, and the runner's own cost per month.

    .venv/bin/python bench/backfill.py [--months 4] [--rows 630000]

Generates green-size months (bench/generate.py: realistic, deterministic), starts a fresh private
PostgreSQL, and runs the real command a user runs, `runner backfill --source <folder> --json`,
once with `--jobs 1` and once with `--jobs 2` (schemas dropped in between, a CHECKPOINT before
each). Reports wall times, the throughput ratio, and the runner's overhead per month: the wall
time of a month whose file has 266 rows (its COPY and SQL take milliseconds), through the same
command. Reports figures; asserts nothing. Results also go to bench/out/backfill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from runner.embedded import EmbeddedPostgres  # noqa: E402
from runner.pipeline import Settings, make_pipeline  # noqa: E402
from runner.project import load_project, month_range  # noqa: E402


def backfill(
    env: dict[str, str], source: Path, start: str, end: str, jobs: int, cache: Path, taxi: str = "green"
) -> tuple[float, list]:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "backfill",
            "--taxi",
            taxi,
            "--start",
            start,
            "--end",
            end,
            "--source",
            str(source),
            "--jobs",
            str(jobs),
            "--json",
            "--quiet",
        ],
        cwd=ROOT,
        env={**os.environ, **env, "RUNNER_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"backfill failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--rows", type=int, default=630_000)
    args = parser.parse_args()

    project = load_project()
    months = month_range(project.month("2019-01"), project.month(f"2019-{args.months:02d}"))
    data = ROOT / "bench" / "out" / "data"
    for month in months:
        generate("green", str(month), args.rows, data)
    tiny = Path(tempfile.mkdtemp(prefix="taxi-bench-tiny-"))
    (tiny / "yellow").mkdir()
    shutil.copy(ROOT / "data" / "tripdata" / "yellow" / "yellow_tripdata_2020-07.csv.gz", tiny / "yellow")

    folder = Path(tempfile.mkdtemp(prefix="taxi-bench-backfill-", dir="/tmp"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(data_dir=folder / "pgdata", port=54399, fast_init=False)
    results: dict[str, object] = {"months": len(months), "rows_per_month": args.rows, "nproc": os.cpu_count()}
    try:
        server.start()
        env = server.env()
        connection = server.connect()
        connection.autocommit = True

        def reset() -> None:
            with connection.cursor() as cursor:
                for schema in ("nyc_taxi", "nyc_taxi_landing", "nyc_taxi_staging", "nyc_taxi_core"):
                    cursor.execute(f"drop schema if exists {schema} cascade")
                cursor.execute("checkpoint")

        # warm-up: the first build creates the tables and the models (not timed)
        backfill(env, tiny, "2020-07", "2020-07", 1, folder / "cache", taxi="yellow")
        for jobs in (1, 2):
            reset()
            backfill(
                env, tiny, "2020-07", "2020-07", 1, folder / "cache", taxi="yellow"
            )  # tables exist, as in a backfill
            seconds, lines = backfill(env, data, str(months[0]), str(months[-1]), jobs, folder / "cache")
            summary = lines[-1]
            results[f"jobs{jobs}"] = {
                "command_seconds": seconds,
                "months_seconds": summary["months_seconds"],
                "models_seconds": summary["models_seconds"],
                "month_seconds": [line["seconds"] for line in lines if "month" in line],
            }
            print(
                f"--jobs {jobs}: {len(months)} months of {args.rows:,} rows: command {seconds:.1f} s"
                f" = months {summary['months_seconds']:.1f} s"
                f" + one models build {summary['models_seconds']:.1f} s"
                f" + start-up (process, dbt parse)",
                flush=True,
            )
        one, two = results["jobs1"], results["jobs2"]
        results["throughput_ratio_months"] = one["months_seconds"] / two["months_seconds"]
        results["throughput_ratio_command"] = one["command_seconds"] / two["command_seconds"]
        print(
            f"throughput, 2 jobs over 1: months {results['throughput_ratio_months']:.2f}x, whole command "
            f"{results['throughput_ratio_command']:.2f}x (target >= 1.5x)"
        )

        # the runner's own cost per month: a 266-row month (its COPY and SQL take milliseconds)
        # reloaded in one process, dbt parsed once before, as in a backfill
        os.environ.update(env)
        pipeline = make_pipeline(ROOT, Settings(source=str(tiny), cache_dir=folder / "cache", force=True))
        yellow, july = project.taxi("yellow"), project.month("2020-07")
        pipeline.load_month(yellow, july)  # parse
        overhead = sorted(pipeline.load_month(yellow, july).seconds for _ in range(5))
        pipeline.warehouse.close()
        results["tiny_month_seconds"] = overhead
        print(
            f"a 266-row month in a running runner: median {overhead[2]:.2f} s "
            f"(samples {', '.join(f'{s:.2f}' for s in overhead)}; target < 0.5 s)"
        )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tiny, ignore_errors=True)
    out = ROOT / "bench" / "out" / "backfill.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
