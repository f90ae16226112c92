"""Shared fixtures. Tests run against real, private PostgreSQL servers, never a user's own."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner.dbt import Dbt, dbt_for, invoke_dbt
from runner.embedded import EmbeddedPostgres
from runner.pipeline import Pipeline, Settings
from runner.project import Project, load_project
from runner.warehouse import Warehouse

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "tripdata"  # the real files shipped with the project
# what the project writes to: main tables and ledger, landing tables, the analytics models
SCHEMAS = ("nyc_taxi", "nyc_taxi_landing", "nyc_taxi_staging", "nyc_taxi_core")

# dbt's own files (target/: manifest, partial parse, compiled SQL; logs/) per test process, inherited
# by the runners it starts: two test processes (pytest -n 2) never share them, nor leave them in the project.
DBT_FILES = Path(tempfile.mkdtemp(prefix="taxi-test-dbt-"))
os.environ["DBT_TARGET_PATH"] = str(DBT_FILES / "target")
os.environ["DBT_LOG_PATH"] = str(DBT_FILES / "logs")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it): never a fixed number, which
    a server another test started may hold."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_configure(config: pytest.Config) -> None:
    # The tests stop runners with SIGINT, as a terminal's Ctrl-C does. A suite started as a
    # background job (`pytest &` in a script, nohup) ignores SIGINT, and so would every runner it
    # starts (an ignored signal stays ignored across exec): give the session Python's own handling.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(DBT_FILES, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One fresh embedded server for the whole session, stopped and deleted at the end."""
    mp = pytest.MonkeyPatch()
    # A user's PGHOST/PGPORT/PGDATABASE/... must never point tests at their server.
    for key in [key for key in os.environ if key.startswith("PG")]:
        mp.delenv(key)
    port = free_port()
    # mkdtemp makes 0700 folders; as root the server runs as postgres, which must be able to enter it.
    folder = Path(tempfile.mkdtemp(prefix="taxi-test-pg-", dir="/tmp"))
    folder.chmod(0o755)
    server = EmbeddedPostgres(data_dir=folder / "pgdata", port=port, fast_init=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        mp.undo()


@pytest.fixture(scope="session")
def warehouse_env(
    pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """libpq variables pointing at the test server, as a user would set them for their own server."""
    mp = pytest.MonkeyPatch()
    env = {**pg_server.env(), "RUNNER_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    for key, value in env.items():
        mp.setenv(key, value)
    mp.delenv("TAXI_SCHEMA", raising=False)
    yield env
    mp.undo()


@pytest.fixture(scope="session")
def project() -> Project:
    return load_project()


@pytest.fixture(scope="session")
def dbt(warehouse_env: dict[str, str], project: Project) -> Dbt:
    """dbt in-process, the project parsed once for the session (as the runner does)."""
    return dbt_for(project.root)


@pytest.fixture
def db(pg_server: EmbeddedPostgres, clean_warehouse: None) -> Iterator:
    """A connection for assertions, on a warehouse emptied before the test."""
    connection = pg_server.connect()
    connection.autocommit = True
    yield connection
    connection.close()


def empty_postgres(server: EmbeddedPostgres) -> None:
    """The test server without the project's schemas: as before a first load."""
    connection = server.connect()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("; ".join(f"drop schema if exists {schema} cascade" for schema in SCHEMAS))
    connection.close()


@pytest.fixture
def clean_warehouse(pg_server: EmbeddedPostgres, warehouse_env: dict[str, str]) -> None:
    empty_postgres(pg_server)


TEST_READ_SIZE = 64 * 1024  # the bundled green month (8 MB of CSV) in over 100 chunks


@contextmanager
def postgres_pipelines(dbt: Dbt, project: Project, cache_dir: Path) -> Iterator[Callable[..., Pipeline]]:
    """Makes pipelines on the test server; their connections are closed when the block ends."""
    made: list[Pipeline] = []

    def make(source: str | Path | None = BUNDLED, force: bool = False, copy_streams: int = 2) -> Pipeline:
        # two COPY sessions, each file in many chunks: every load here tests the streams' hand-off
        warehouse = Warehouse.for_project(project, copy_streams=copy_streams)
        warehouse.read_size = TEST_READ_SIZE
        pipeline = Pipeline(
            project=project,
            settings=Settings(source=str(source) if source else None, cache_dir=cache_dir, force=force),
            warehouse=warehouse,
            dbt=dbt,
        )
        made.append(pipeline)
        return pipeline

    try:
        yield make
    finally:
        for pipeline in made:
            pipeline.warehouse.close()


@pytest.fixture
def make_pipeline(dbt: Dbt, project: Project, tmp_path: Path, clean_warehouse: None) -> Iterator:
    """Pipelines on the test server; each test's warehouse starts empty."""
    with postgres_pipelines(dbt, project, tmp_path / "cache") as make:
        yield make


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A folder the test server (running as the postgres user) can read."""
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o755)
    folder = tmp_path / "raw"
    (folder / "green").mkdir(parents=True)
    folder.chmod(0o755)
    (folder / "green").chmod(0o755)
    return folder


# --- BigQuery: a real BigQuery emulator and a GCS emulator, started once for the session -------


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from tests.emulators import Emulators

    started = Emulators.start(tmp_path_factory.mktemp("gcp") / "storage")
    yield started
    started.stop()


@pytest.fixture(scope="session")
def bq_env(emulators, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The settings a user sets for the BigQuery target, pointing at the emulators."""
    mp = pytest.MonkeyPatch()
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "DBT_TARGET"):
        mp.delenv(key, raising=False)
    env = {
        **emulators.env(),
        "GCS_BUCKET": "taxi-test-bucket",
        "BQ_DATASET": "nyc_taxi",
        "GCP_LOCATION": "US",
        "RUNNER_CACHE_DIR": str(tmp_path_factory.mktemp("bq-cache")),
    }
    for key, value in env.items():
        mp.setenv(key, value)
    yield env
    mp.undo()


@pytest.fixture(scope="session")
def bq_dbt(bq_env: dict[str, str], project: Project) -> Dbt:
    return Dbt(project_dir=project.root, profiles_dir=project.root / "profiles", target="bq")


@dataclass
class DbtCall:
    success: bool
    message: str  # dbt's errors, as it would print them
    sql: list[str]  # every statement dbt sent
    results: dict[str, str]  # node name -> its status (pass, warn, fail, ...; `dbt ls`: listed)


def dbt_cli(args: list[str], target: str = "bq") -> DbtCall:
    """dbt as a user (or Kestra's DbtCLI) runs it: each call parses the project with the call's vars
    (the sources' external locations are rendered then), unlike the runner's dbt, which reuses one
    parse."""
    from dbt.cli.main import dbtRunner

    errors: list[str] = []
    sql: list[str] = []

    def collect(event: Any) -> None:
        if event.info.name == "SQLQuery":
            sql.append(event.data.sql)
        elif event.info.level == "error" and event.info.msg:
            errors.append(str(event.info.msg))

    project = ["--project-dir", str(ROOT), "--profiles-dir", str(ROOT / "profiles"), "--target", target]
    result = invoke_dbt(dbtRunner(callbacks=[collect]), [*args, *project, "--log-level", "none"])
    if result.exception is not None:
        errors.append(str(result.exception))
    if isinstance(result.result, list):  # dbt ls
        statuses = dict.fromkeys(result.result, "listed")
    else:
        runs = getattr(result.result, "results", None) or []
        statuses = {run.node.name: str(run.status) for run in runs if hasattr(run, "node")}
    return DbtCall(result.success, "\n".join(errors), sql, statuses)


def stage_external_sources(variables: dict[str, str]) -> DbtCall:
    """`dbt run-operation stage_external_sources --target bq --vars ..`."""
    import json

    return dbt_cli(["run-operation", "stage_external_sources", "--vars", json.dumps(variables)])


def empty_bigquery(project: Project):
    """The runner's BigQuery warehouse on emptied datasets (the bucket and its objects stay)."""
    from runner.bigquery import BigQueryWarehouse

    warehouse = BigQueryWarehouse.for_project(project)
    for dataset in SCHEMAS:
        warehouse.bigquery.delete_dataset(
            f"{warehouse.config.project}.{dataset}", delete_contents=True, not_found_ok=True
        )
    warehouse.setup()
    return warehouse


@pytest.fixture
def bq(bq_env: dict[str, str], project: Project) -> Iterator:
    warehouse = empty_bigquery(project)
    yield warehouse
    warehouse.close()


@pytest.fixture
def make_bq_pipeline(bq, bq_dbt: Dbt, project: Project, tmp_path: Path) -> Iterator:
    def make(source: str | Path | None = BUNDLED, force: bool = False) -> Pipeline:
        return Pipeline(
            project=project,
            settings=Settings(
                source=str(source) if source else None, cache_dir=tmp_path / "bq-cache", force=force
            ),
            warehouse=bq,
            dbt=bq_dbt,
        )

    yield make


# --- a local HTTP server for the download paths ----------------------------------------------


class FileServer:
    """Serves <taxi>/<file> from a dict; a path can first fail with scripted statuses."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: dict[str, list[int]] = {}
        self.slow: set[str] = set()
        self.requests: list[str] = []
        self.heads: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _head(self, path: str) -> bytes | None:
                """The status line and headers of a file (or a 404); returns its body."""
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return None
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()[:16]}"')
                self.end_headers()
                return body

            def do_HEAD(self) -> None:
                path = self.path.lstrip("/")
                server.heads.append(path)
                self._head(path)

            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                server.requests.append(path)
                if server.failures.get(path):
                    self.send_error(server.failures[path].pop(0))
                    return
                body = self._head(path)
                if body is None:
                    return
                if path in server.slow:
                    for start in range(0, len(body), 1024):
                        self.wfile.write(body[start : start + 1024])
                        time.sleep(0.05)
                else:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()
