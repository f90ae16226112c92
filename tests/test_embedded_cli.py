"""The README's main path: no PGHOST, so the runner starts and uses its own embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BUNDLED, ROOT, free_port
from reference import expected_month


@pytest.fixture
def embedded_env(pg_server) -> Iterator[dict[str, str]]:
    """No PG* variables at all; the embedded server on a free port in a folder of its own."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="taxi-test-embedded-", dir="/tmp"))
    folder.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        RUNNER_DATA_DIR=str(folder / "pgdata"),
        RUNNER_PGPORT=str(port),
        RUNNER_CACHE_DIR=str(folder / "cache"),
    )
    yield env
    subprocess.run([sys.executable, "-m", "runner", "db", "stop"], env=env, cwd=ROOT, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def runner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_load_starts_the_embedded_server_and_db_commands_manage_it(embedded_env):
    port = embedded_env["RUNNER_PGPORT"]
    stopped = runner(embedded_env, "db", "status")
    assert stopped.returncode == 3 and "stopped" in stopped.stdout

    loaded = runner(embedded_env, "load", "--taxi", "green", "--month", "2020-10", "--source", str(BUNDLED))
    assert loaded.returncode == 0, loaded.stderr
    assert (
        f"started the embedded PostgreSQL at postgresql://postgres@127.0.0.1:{port}/nyc_taxi" in loaded.stderr
    )

    running = runner(embedded_env, "db", "status")
    assert running.returncode == 0 and "running" in running.stdout and port in running.stdout
    passfile = Path(embedded_env["RUNNER_DATA_DIR"]) / "runner.pgpass"
    assert runner(embedded_env, "db", "url").stdout.strip() == (
        f"postgresql://postgres@127.0.0.1:{port}/nyc_taxi?passfile={passfile}"
    )
    status = runner(embedded_env, "status", "--json")
    (month,) = [json.loads(line) for line in status.stdout.splitlines()]
    expected = expected_month(BUNDLED / "green" / "green_tripdata_2020-10.csv.gz", "2020-10")
    assert (month["taxi"], month["file_month"], month["rows_loaded"]) == (
        "green",
        "2020-10",
        expected.rows_loaded,
    )

    assert runner(embedded_env, "db", "stop").stdout.strip() == "stopped"
    assert runner(embedded_env, "db", "stop").stdout.strip() == "not running"
    # data survives a restart; reset deletes it
    assert runner(embedded_env, "db", "start").returncode == 0
    assert json.loads(runner(embedded_env, "status", "--json").stdout)["rows_loaded"] == expected.rows_loaded
    assert runner(embedded_env, "db", "reset", "--yes").returncode == 0
    assert not Path(embedded_env["RUNNER_DATA_DIR"]).exists()
    assert runner(embedded_env, "status", "--json").stdout == ""  # a new, empty server


def exports(text: str) -> dict[str, str]:
    """`export NAME=value` lines, as a shell's eval would set them."""
    import shlex

    return dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines())


def test_dbt_alone_follows_the_runners_server_with_the_exports_of_db_env(embedded_env):
    assert runner(embedded_env, "db", "start").returncode == 0
    printed = runner(embedded_env, "db", "env")
    assert printed.returncode == 0
    env = {**embedded_env, **exports(printed.stdout), "DBT_PROFILES_DIR": str(ROOT / "profiles")}
    assert env["PGPORT"] == embedded_env["RUNNER_PGPORT"] and "PASSWORD" not in printed.stdout

    debug = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "debug"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert "Connection test: [OK connection ok]" in debug.stdout.replace("\x1b[32m", "").replace(
        "\x1b[0m", ""
    )

    # without PGPORT the profile takes RUNNER_PGPORT, as the runner does (not the default 54329)
    del env["PGPORT"]
    debug = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "debug"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert f"port: {embedded_env['RUNNER_PGPORT']}" in debug.stdout and "connection ok" in debug.stdout
