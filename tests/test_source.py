"""A month's file is downloaded whole or not at all, retried when that can help, cached, and kept secret.

runner.source against a real HTTP server on 127.0.0.1 (no other host is ever contacted): no
credential of a source URL reaches a message, a warning or the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner import __version__, source
from runner.project import Month, UsageError
from runner.source import FetchedFile, SourceError, clean_cache, fetch

TAXI = "green"
MONTH = Month(2019, 1)
FILENAME = "green_tripdata_2019-01.csv.gz"
PATH = f"/{TAXI}/{FILENAME}"


def trip_file(rows: int = 3, vendor: int = 2) -> bytes:
    lines = ["VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,trip_distance"]
    lines += [f"{vendor},2019-01-01 00:{i:02d}:00,2019-01-01 00:{i + 5:02d}:00,1.{i}" for i in range(rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)  # same bytes every call


@dataclass
class Served:
    """What the test server serves and what it saw. `script` overrides the next responses in turn."""

    url: str = ""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (body, etag)
    script: list[str] = field(default_factory=list)  # "500", "403", "truncate", "slow"; then normal
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: Any = None

    def publish(self, body: bytes, etag: str, path: str = PATH) -> None:
        self.files[path] = (body, etag)


class Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state: Served = self.server.state
        state.requests.append({"path": self.path, "headers": dict(self.headers)})
        action = state.script.pop(0) if state.script else "serve"
        if action in ("500", "403"):
            return self._send(int(action), b"oops")
        if action == "slow":
            time.sleep(0.5)  # longer than the client's timeout: it has hung up, so answer nothing
            return None
        if self.path.startswith("/moved/"):
            return self._send(302, headers={"Location": self.path.removeprefix("/moved")})
        if self.path not in state.files:
            return self._send(404, b"not here")
        body, etag = state.files[self.path]
        if action == "truncate":
            # Promise more than is sent, then hang up (HTTP/1.0: the connection closes after this).
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, headers={"ETag": etag})
        return self._send(200, body, {"ETag": etag, "Last-Modified": "Tue, 01 Jan 2019 00:00:00 GMT"})


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would send 127.0.0.1 requests elsewhere.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Served]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = Served(url=f"http://127.0.0.1:{httpd.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            httpd.shutdown()
            httpd.server_close()

    httpd.state.stop = stop  # type: ignore[attr-defined]
    yield httpd.state  # type: ignore[attr-defined]
    stop()


def get(served: Served, cache: Path, **options: Any) -> FetchedFile:
    options = {
        "source": served.url,
        "cache_dir": cache,
        "retries": 2,
        "backoff": 0.01,
        "timeout": 5.0,
    } | options
    return fetch(TAXI, MONTH, FILENAME, **options)


def cache_files(cache: Path) -> list[str]:
    """The cached files (not the folder's CACHEDIR.TAG)."""
    return sorted(
        str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.name != "CACHEDIR.TAG"
    )


def test_good_download(server: Served, tmp_path: Path) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    seen: list[tuple[int, int | None]] = []

    got = get(server, tmp_path, progress=lambda done, total: seen.append((done, total)))

    assert got.path == tmp_path / TAXI / FILENAME
    assert got.path.read_bytes() == body
    assert got.size == len(body)
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.source_url == f"{server.url}{PATH}"
    assert not got.from_cache
    assert seen[-1] == (len(body), len(body))
    meta = json.loads((tmp_path / TAXI / f"{FILENAME}.meta.json").read_text())
    assert meta["url"] == got.source_url
    assert meta["etag"] == '"v1"'
    assert meta["last_modified"] == "Tue, 01 Jan 2019 00:00:00 GMT"
    assert meta["size"] == len(body)
    assert meta["sha256"] == got.sha256
    assert cache_files(tmp_path) == [f"{TAXI}/{FILENAME}", f"{TAXI}/{FILENAME}.meta.json"]
    assert server.requests[0]["headers"]["User-Agent"] == f"nyc-taxi-runner/{__version__}"


def test_second_fetch_revalidates_and_uses_the_cache(server: Served, tmp_path: Path) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    first = get(server, tmp_path)

    second = get(server, tmp_path)

    assert len(server.requests) == 2
    headers = server.requests[1]["headers"]
    assert headers["If-None-Match"] == '"v1"'
    assert headers["If-Modified-Since"] == "Tue, 01 Jan 2019 00:00:00 GMT"
    assert second.from_cache
    assert (second.path, second.size, second.sha256) == (first.path, first.size, first.sha256)


def test_republished_file_replaces_the_cache(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(rows=2), '"v1"')
    get(server, tmp_path)
    new_body = trip_file(rows=5)
    server.publish(new_body, '"v2"')

    got = get(server, tmp_path)

    assert not got.from_cache
    assert got.path.read_bytes() == new_body
    assert got.sha256 == hashlib.sha256(new_body).hexdigest()
    meta = json.loads((tmp_path / TAXI / f"{FILENAME}.meta.json").read_text())
    assert (meta["etag"], meta["sha256"]) == ('"v2"', got.sha256)


def test_not_published_is_not_retried(server: Served, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        get(server, tmp_path)

    message = str(caught.value)
    assert FILENAME in message and "green 2019-01" in message and "HTTP 404" in message
    assert "not published" in message and f"{server.url}{PATH}" in message
    assert caught.value.status == 404
    assert len(server.requests) == 1
    assert cache_files(tmp_path) == []


def test_other_client_errors_are_not_retried(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(), '"v1"')
    server.script = ["403"] * 10

    with pytest.raises(SourceError, match="HTTP 403") as caught:
        get(server, tmp_path)

    assert FILENAME in str(caught.value) and caught.value.status == 403
    assert len(server.requests) == 1


def test_server_error_then_success(server: Served, tmp_path: Path) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    server.script = ["500"]

    got = get(server, tmp_path)

    assert got.path.read_bytes() == body
    assert len(server.requests) == 2


def test_persistent_server_error(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(), '"v1"')
    server.script = ["500"] * 10

    with pytest.raises(SourceError) as caught:
        get(server, tmp_path, retries=3)

    message = str(caught.value)
    assert FILENAME in message and "green 2019-01" in message and "HTTP 500" in message
    assert f"{server.url}{PATH}" in message and "4 attempt" in message
    assert len(server.requests) == 4
    assert cache_files(tmp_path) == []


def test_truncated_transfer_is_retried(server: Served, tmp_path: Path) -> None:
    body = trip_file(rows=50)
    server.publish(body, '"v1"')
    server.script = ["truncate"]

    got = get(server, tmp_path)

    assert got.path.read_bytes() == body
    assert len(server.requests) == 2


def test_always_truncated_leaves_the_cache_unchanged(server: Served, tmp_path: Path) -> None:
    old = trip_file(rows=2)
    server.publish(old, '"v1"')
    get(server, tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in cache_files(tmp_path)}
    server.publish(trip_file(rows=50), '"v2"')
    server.script = ["truncate"] * 10

    with pytest.raises(SourceError, match="truncated") as caught:
        get(server, tmp_path)

    assert FILENAME in str(caught.value)
    assert len(server.requests) == 1 + 3
    assert {name: (tmp_path / name).read_bytes() for name in cache_files(tmp_path)} == before


def test_always_truncated_without_a_cache_leaves_nothing(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(rows=50), '"v1"')
    server.script = ["truncate"] * 10
    with pytest.raises(SourceError, match="truncated"):
        get(server, tmp_path)
    assert cache_files(tmp_path) == []


def test_server_down_uses_the_cache_and_warns(server: Served, tmp_path: Path) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    first = get(server, tmp_path)
    server.stop()
    warnings: list[str] = []

    got = get(server, tmp_path, warn=warnings.append)

    assert got.from_cache
    assert (got.path, got.sha256) == (first.path, first.sha256)
    assert got.path.read_bytes() == body
    assert len(warnings) == 1
    assert FILENAME in warnings[0] and "using the cached copy from" in warnings[0]


def test_server_down_without_a_cache(server: Served, tmp_path: Path) -> None:
    server.stop()
    with pytest.raises(SourceError, match="could not download") as caught:
        get(server, tmp_path)
    assert "3 attempt" in str(caught.value)
    assert cache_files(tmp_path) == []


def test_timeout_is_retried(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(), '"v1"')
    server.script = ["slow"]

    got = get(server, tmp_path, timeout=0.1)

    assert got.path.read_bytes() == trip_file()
    assert len(server.requests) == 2


def test_redirects_are_followed_without_the_password(server: Served, tmp_path: Path) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    host = server.url.removeprefix("http://")

    got = get(server, tmp_path, source=f"http://alice:s3cret@{host}/moved")

    assert got.path.read_bytes() == body
    assert got.source_url == f"{server.url}/moved{PATH}"
    first, second = server.requests
    assert first["headers"]["Authorization"].startswith("Basic ")
    assert "Authorization" not in second["headers"]
    assert "s3cret" not in (tmp_path / TAXI / f"{FILENAME}.meta.json").read_text()


@pytest.mark.parametrize("script", [[], ["500"] * 10])
def test_credentials_never_appear_in_messages(server: Served, tmp_path: Path, script: list[str]) -> None:
    server.script = script
    host = server.url.removeprefix("http://")
    with pytest.raises(SourceError) as caught:
        get(server, tmp_path, source=f"http://alice:s3cret@{host}/files")
    message = str(caught.value)
    assert "s3cret" not in message and "alice" not in message
    assert f"{server.url}/files{PATH}" in message


def test_credentials_never_appear_in_the_offline_warning(server: Served, tmp_path: Path) -> None:
    server.publish(trip_file(), '"v1"')
    host = server.url.removeprefix("http://")
    credentialed = f"http://alice:s3cret@{host}"
    get(server, tmp_path, source=credentialed)
    server.stop()
    warnings: list[str] = []
    got = get(server, tmp_path, source=credentialed, warn=warnings.append)
    assert got.from_cache and "s3cret" not in got.source_url
    assert warnings and "s3cret" not in warnings[0]


def test_local_folder_found(tmp_path: Path) -> None:
    body = trip_file()
    folder = tmp_path / "mirror"
    (folder / TAXI).mkdir(parents=True)
    (folder / TAXI / FILENAME).write_bytes(body)
    seen: list[tuple[int, int | None]] = []

    for given in (str(folder), folder.as_uri()):
        got = fetch(
            TAXI,
            MONTH,
            FILENAME,
            source=given,
            cache_dir=tmp_path / "cache",
            progress=lambda d, t: seen.append((d, t)),
        )
        assert got.path == folder / TAXI / FILENAME
        assert got.sha256 == hashlib.sha256(body).hexdigest()
        assert got.size == len(body)
        assert got.from_cache
        assert got.source_url == (folder / TAXI / FILENAME).as_uri()
        assert seen[-1] == (len(body), len(body))
    assert not (tmp_path / "cache").exists()  # read in place, not copied


def test_local_folder_not_found(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found at") as caught:
        fetch(TAXI, MONTH, FILENAME, source=str(tmp_path), cache_dir=tmp_path / "cache")
    assert FILENAME in str(caught.value) and "green 2019-01" in str(caught.value)
    assert str(tmp_path / TAXI / FILENAME) in str(caught.value)


def test_clean_cache_removes_only_its_files(server: Served, tmp_path: Path, project) -> None:
    body = trip_file()
    server.publish(body, '"v1"')
    cache = tmp_path / "cache"
    get(server, cache)
    (cache / TAXI / "green_tripdata_2019-02.csv.gz.part").write_bytes(b"half")  # a cut-off download
    (cache / TAXI / "green_tripdata_2019-03.csv.gz").write_bytes(b"put there by hand: no sidecar")
    (cache / "yellow").mkdir()
    (cache / "yellow" / "notes.txt").write_text("mine")
    (cache / "yellow" / "draft.part").write_text("mine too: not a month file")
    (cache / "empty").mkdir()  # not the runner's either
    sidecar_size = (cache / TAXI / f"{FILENAME}.meta.json").stat().st_size

    removed, freed = clean_cache(cache, project.file_pattern)

    assert (removed, freed) == (3, len(body) + sidecar_size + 4)
    assert cache_files(cache) == [
        f"{TAXI}/green_tripdata_2019-03.csv.gz",
        "yellow/draft.part",
        "yellow/notes.txt",
    ]
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache / "empty").is_dir()
    assert clean_cache(cache, project.file_pattern) == (0, 0)
    assert clean_cache(tmp_path / "nowhere", project.file_pattern) == (0, 0)


def test_clean_cache_refuses_a_folder_that_is_not_its_cache(tmp_path: Path, project) -> None:
    """The bundled data/tripdata, say: trip files the runner never downloaded."""
    folder = tmp_path / "tripdata"
    (folder / TAXI).mkdir(parents=True)
    (folder / TAXI / FILENAME).write_bytes(trip_file())

    with pytest.raises(SourceError, match="is not the runner's download cache"):
        clean_cache(folder, project.file_pattern)
    assert (folder / TAXI / FILENAME).exists()


@pytest.mark.parametrize("bad", ["ftp://example.com/data", "", "   ", "http://", "file://otherhost/data"])
def test_bad_source_is_a_usage_error(bad: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        fetch(TAXI, MONTH, FILENAME, source=bad, cache_dir=tmp_path)


def test_file_url_and_is_local(tmp_path: Path) -> None:
    # no source: the public release (FACTS.md's URL pattern), not whatever the module's constant says
    assert source.file_url(None, TAXI, FILENAME) == (
        "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/green/green_tripdata_2019-01.csv.gz"
    )
    assert (
        source.file_url("https://u:p@mirror.test/x/", "yellow", "f.csv.gz")
        == "https://mirror.test/x/yellow/f.csv.gz"
    )
    assert source.file_url(str(tmp_path), TAXI, FILENAME) == (tmp_path / TAXI / FILENAME).as_uri()
    assert source.is_local(str(tmp_path)) and source.is_local(tmp_path.as_uri())
    assert not source.is_local(None) and not source.is_local("http://mirror.test/data")
    with pytest.raises(UsageError):
        source.is_local("ftp://mirror.test/data")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "explicit"))
    assert source.default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("RUNNER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert source.default_cache_dir() == tmp_path / "xdg" / "nyc-taxi"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert source.default_cache_dir() == tmp_path / "home" / ".cache" / "nyc-taxi"
