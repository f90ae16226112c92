"""Shared fixtures. Tests run against real, private PostgreSQL servers, never a user's own."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The project is not installed into the venv: make `runner` importable when pytest runs from anywhere.
# (`pythonpath = ["."]` under [tool.pytest.ini_options] would make this line unnecessary.)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One fresh embedded server for the whole session, stopped and deleted at the end."""
    mp = pytest.MonkeyPatch()
    # A user's PGHOST/PGPORT/PGDATABASE/... must never point tests at their server.
    for key in [key for key in os.environ if key.startswith("PG")]:
        mp.delenv(key)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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
