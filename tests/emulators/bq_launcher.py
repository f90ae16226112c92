"""Start the bqemulator BigQuery emulator offline: `python bq_launcher.py PROJECT GCS_ROOT`.

bqemulator's own start-up installs DuckDB's spatial extension from the network and dies without
it; this launcher skips that (GEOGRAPHY is not used here) and forbids any extension download.
Prints `READY <rest url>` once it accepts requests, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from bqemulator.config import LogLevel, PersistenceMode, Settings
from bqemulator.server import EmulatorServer
from bqemulator.storage import engine

_apply_session_pragmas = engine.DuckDBEngine._apply_session_pragmas


def _offline_pragmas(self) -> None:
    _apply_session_pragmas(self)
    self._connection.execute("SET autoinstall_known_extensions = false")


engine.DuckDBEngine._load_spatial = lambda self: None
engine.DuckDBEngine._apply_session_pragmas = _offline_pragmas


async def main(project: str, gcs_root: str) -> None:
    server = EmulatorServer(
        Settings(
            rest_host="127.0.0.1",
            rest_port=0,
            grpc_host="127.0.0.1",
            grpc_port=0,
            persistence_mode=PersistenceMode.EPHEMERAL,
            default_project_id=project,
            gcs_local_root=gcs_root,
            enable_format_extensions=False,
            metrics_enabled=False,
            tracing_enabled=False,
            log_level=LogLevel("warning"),
        )
    )
    await server.start()
    print("READY", server.rest_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
