"""The embedded PostgreSQL starts, stops and resets safely, stays durable, and admits only its owner.

Against real servers: each test gets its own folder and port.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import free_port

from runner.embedded import (
    DEFAULT_PORT,
    EmbeddedError,
    EmbeddedPostgres,
    ServerStatus,
    default_data_dir,
    find_bindir,
)

NewServer = Callable[..., EmbeddedPostgres]


def make_server_dir() -> Path:
    """A temp folder the postgres user can enter: mkdtemp makes 0700, root runs the server as postgres."""
    folder = Path(tempfile.mkdtemp(prefix="taxi-test-pg-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


@pytest.fixture
def new_server() -> Iterator[NewServer]:
    """Make servers in their own temp folders on free ports; stop and delete them all afterwards."""
    made: list[tuple[EmbeddedPostgres, Path]] = []

    def make(port: int | None = None, dbname: str | None = None) -> EmbeddedPostgres:
        folder = make_server_dir()
        server = EmbeddedPostgres(folder / "pgdata", port=port or free_port(), dbname=dbname, fast_init=True)
        made.append((server, folder))
        return server

    yield make
    for server, folder in made:
        try:
            server.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def test_start_stop_are_idempotent_and_status_follows(new_server: NewServer) -> None:
    server = new_server()
    before = server.status()
    assert (before.running, before.pid, before.initialized, before.version) == (False, None, False, None)
    assert (before.port, before.data_dir) == (server.port, server.data_dir)

    assert server.start() is True
    assert server.start() is False
    running = server.status()
    assert running.running and running.initialized
    assert running.pid is not None and running.pid > 0
    assert running.port == server.port
    assert running.version is not None and int(running.version) >= 15
    # The pid is the postmaster's, as recorded in its lock file.
    assert (server.data_dir / "postmaster.pid").read_text().split()[0] == str(running.pid)

    assert server.stop() is True
    assert server.stop() is False
    stopped = server.status()
    assert (stopped.running, stopped.pid, stopped.initialized) == (False, None, True)
    assert stopped.version == running.version
    assert not (server.data_dir / "postmaster.pid").exists()


def test_url_env_and_a_real_connection(pg_server: EmbeddedPostgres) -> None:
    passfile = pg_server.data_dir / "runner.pgpass"
    assert pg_server.url() == f"postgresql://postgres@127.0.0.1:{pg_server.port}/nyc_taxi?passfile={passfile}"
    assert pg_server.env() == {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_server.port),
        "PGUSER": "postgres",
        "PGDATABASE": "nyc_taxi",
        "PGPASSFILE": str(passfile),
    }
    conn = pg_server.connect()
    try:
        assert conn.autocommit is False
        with conn.cursor() as cur:
            cur.execute(
                "SELECT version(), current_database(), current_user, current_setting('server_encoding')"
            )
            version, database, user, encoding = cur.fetchone()
            cur.execute("SHOW server_version_num")
            assert int(cur.fetchone()[0]) >= 150000
    finally:
        conn.close()
    assert version.startswith("PostgreSQL ")
    assert (database, user, encoding) == ("nyc_taxi", "postgres", "UTF8")


def test_default_durability_is_kept(pg_server: EmbeddedPostgres) -> None:
    conn = pg_server.connect("postgres")
    try:
        with conn.cursor() as cur:
            settings = {}
            for name in (
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "listen_addresses",
                "max_wal_size",
            ):
                cur.execute(f"SHOW {name}")
                settings[name] = cur.fetchone()[0]
    finally:
        conn.close()
    assert settings == {
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "listen_addresses": "127.0.0.1",
        "max_wal_size": "4GB",  # no checkpoint inside a month's load (SERVER_SETTINGS)
    }


def test_the_database_is_created(new_server: NewServer) -> None:
    server = new_server(dbname="taxi_under_test")
    server.start()
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone()[0] == "taxi_under_test"
    finally:
        conn.close()
    # A second object on the same cluster with another name gets its database on an idempotent start.
    other = EmbeddedPostgres(data_dir=server.data_dir, port=server.port, dbname="second_db", fast_init=True)
    assert other.start() is False
    other.connect().close()


def test_reset_deletes_the_cluster_and_the_next_start_initialises(new_server: NewServer) -> None:
    server = new_server()
    server.start()
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE marker (id int)")
        conn.commit()
    finally:
        conn.close()

    server.reset()
    assert not server.data_dir.exists()
    assert server.status() == ServerStatus(
        running=False, pid=None, port=server.port, data_dir=server.data_dir, initialized=False, version=None
    )

    assert server.start() is True
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('marker')")
            assert cur.fetchone()[0] is None
    finally:
        conn.close()


def test_reset_refuses_a_folder_that_is_not_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(EmbeddedError, match="refusing to delete"):
        EmbeddedPostgres(data_dir=tmp_path, port=free_port()).reset()
    assert (tmp_path / "precious.txt").exists()


def test_a_port_in_use_is_reported(new_server: NewServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = new_server(port=port)
        with pytest.raises(EmbeddedError, match=rf"port {port}\b.*in use.*RUNNER_PGPORT"):
            server.start()
        assert not server.status().running


def test_inherited_pg_variables_do_not_redirect_the_server_and_pgdatabase_names_its_database(
    new_server: NewServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGHOST", "/nonexistent/socket-dir")
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGDATA", str(tmp_path / "not-here"))
    monkeypatch.setenv("PGUSER", "nobody_at_all")
    # dbt's profile reads PGDATABASE too: the server makes that database, so both use the same one
    # (the course's project looks for `taxi_rides_ny`)
    monkeypatch.setenv("PGDATABASE", "taxi_rides_ny")
    monkeypatch.setenv("PGSSLMODE", "require")
    server = new_server()
    assert server.start() is True
    assert server.env()["PGDATABASE"] == "taxi_rides_ny"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_setting('port')")
            assert cur.fetchone() == ("taxi_rides_ny", str(server.port))
    finally:
        conn.close()
    assert not (tmp_path / "not-here").exists()
    assert server.stop() is True


def test_a_stale_pid_file_is_not_a_running_server(new_server: NewServer) -> None:
    server = new_server()
    server.start()
    server.stop()
    # As after a crash and a reboot: the recorded pid now belongs to an unrelated live process.
    (server.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{server.data_dir}\n0\n{server.port}\n")
    assert server.status().running is False
    assert server.start() is True
    assert server.status().running is True


def test_find_bindir_honours_runner_pg_bindir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RUNNER_PG_BINDIR", raising=False)
    real = find_bindir()
    assert all((real / name).is_file() for name in ("postgres", "initdb", "pg_ctl"))

    monkeypatch.setenv("RUNNER_PG_BINDIR", str(real))
    assert find_bindir() == real

    monkeypatch.setenv("RUNNER_PG_BINDIR", str(tmp_path))
    with pytest.raises(EmbeddedError, match="RUNNER_PG_BINDIR"):
        find_bindir()


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNNER_DATA_DIR", str(tmp_path / "cluster"))
    monkeypatch.delenv("RUNNER_PGPORT", raising=False)
    assert default_data_dir() == tmp_path / "cluster"
    assert EmbeddedPostgres().port == DEFAULT_PORT
    monkeypatch.setenv("RUNNER_PGPORT", "55999")
    server = EmbeddedPostgres()
    assert (server.port, server.data_dir, server.dbname) == (55999, tmp_path / "cluster", "nyc_taxi")
    monkeypatch.setenv("PGDATABASE", "taxi_rides_ny")
    assert EmbeddedPostgres().dbname == "taxi_rides_ny"

    monkeypatch.delenv("RUNNER_DATA_DIR")
    if os.geteuid() == 0:
        assert default_data_dir() == Path("/var/lib/nyc-taxi/postgres")
    else:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert default_data_dir() == tmp_path / "xdg" / "nyc-taxi" / "postgres"


def test_a_failed_start_quotes_the_server_log(new_server: NewServer) -> None:
    server = new_server()
    server.start()
    server.stop()
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'plenty'\n")
    with pytest.raises(EmbeddedError, match=r"failed to start(?s:.*)shared_buffers"):
        server.start()
    assert not server.status().running


def test_without_system_binaries_the_pgserver_wheel_runs_the_server(
    new_server: NewServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The optional fallback, for real: the `pgserver` wheel's own PostgreSQL (a dev dependency)."""
    pytest.importorskip("pgserver")
    import runner.embedded as embedded

    monkeypatch.delenv("RUNNER_PG_BINDIR", raising=False)
    monkeypatch.setattr(embedded, "_pg_config_bindir", lambda: None)
    monkeypatch.setattr(embedded, "_system_bindirs", lambda: [])
    bindir = find_bindir()
    assert "pgserver" in str(bindir)

    server = new_server()
    assert server.start()
    with server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("show server_version_num")
        assert int(cursor.fetchone()[0]) >= 160000  # the wheel bundles 16; the system here has 15


# --- it admits only its owner -------------------------------------------------------------------


def connect_as_someone_else(server: EmbeddedPostgres, **extra: str):
    import psycopg2

    return psycopg2.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        dbname="postgres",
        sslmode="disable",
        passfile="/dev/null",
        **extra,
    )


def test_a_connection_without_the_password_is_refused(pg_server: EmbeddedPostgres) -> None:
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        connect_as_someone_else(pg_server)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_as_someone_else(pg_server, password="postgres")
    passfile = pg_server.data_dir / "runner.pgpass"
    assert passfile.stat().st_mode & 0o777 == 0o600
    assert passfile.stat().st_uid == os.geteuid()  # the owner's, and the owner's alone
    # libpq finds it through the URL and PGPASSFILE: the password itself is printed nowhere
    password = pg_server.password()
    assert password not in pg_server.url() and password not in str(pg_server.env())
    import psycopg2 as driver

    driver.connect(pg_server.url()).close()


def test_a_cluster_an_older_runner_made_with_trust_gets_a_password(new_server: NewServer) -> None:
    import psycopg2

    server = new_server()
    server.start()
    server.stop()
    (server.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\nlocal all all trust\n")
    (server.data_dir / "runner.pgpass").unlink()
    server.start()

    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        connect_as_someone_else(server)
    server.connect().close()
    assert "trust" not in (server.data_dir / "pg_hba.conf").read_text()
