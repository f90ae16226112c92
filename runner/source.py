"""Where trip files come from and how they reach local disk.

A source is either an http(s) URL prefix or a local folder (a plain path or a file:// URL); under
either, a month's file lives at `<source>/<taxi>/<file>`, its name as var tripdata_file lays it out
(`green_tripdata_2019-01.csv.gz`).

HTTP downloads stream into a per-user cache (`<cache_dir>/<taxi>/<filename>`) with a JSON sidecar
recording where the bytes came from, so a later run can revalidate with a conditional GET instead of
downloading again. Local folders are read in place. Only the standard library is used.

This module only moves bytes: gzip integrity and CSV headers are checked by the loader while it streams.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner import __version__
from runner.project import Month, UsageError

DEFAULT_SOURCE = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"

USER_AGENT = f"nyc-taxi-runner/{__version__}"
CHUNK_SIZE = 1024 * 1024  # stream in 1 MiB pieces: trip files are up to a few hundred MB
PART_SUFFIX = ".part"
META_SUFFIX = ".meta.json"
CACHE_TAG = "CACHEDIR.TAG"  # https://bford.info/cachedir/
CACHE_TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"

Progress = Callable[[int, int | None], None]  # (bytes done so far, total bytes or None)

log = logging.getLogger(__name__)

# A scheme only counts when followed by "://", so "C:\data" or "./x:y" stay plain paths.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# userinfo anywhere in a text: "scheme://user:password@" -> "scheme://"
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


class SourceError(Exception):
    """A month's file could not be had. The message names the file and the month and says what is wrong,
    e.g. "green_tripdata_2019-01.csv.gz (green 2019-01): not published at <url> (HTTP 404)".

    `status` is the HTTP status when the server answered with an error (404 too for a local folder
    without the file), else None; 404 and 410 mean the month is not published (yet).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status


@dataclass(frozen=True)
class FetchedFile:
    path: Path  # local file to read (in the cache for http, in place for a local folder)
    size: int  # bytes
    sha256: str  # hex digest of the file's bytes
    source_url: str  # the http(s) URL, or the absolute local path as a file:// URL
    from_cache: bool  # True when no bytes were transferred (local folder, or cached copy still valid)


# --- sources and URLs ---------------------------------------------------------------------------


def redact(text: str) -> str:
    """Remove `user:password@` from every URL in a text, so credentials never reach a message or log."""
    return _USERINFO_RE.sub(r"\1", text)


def _parse_source(source: str | None) -> tuple[str, str]:
    """("http", prefix URL) or ("local", absolute folder path); UsageError for anything else."""
    if source is None:
        source = DEFAULT_SOURCE
    text = str(source).strip()
    if not text:
        raise UsageError("the source is empty: give an http(s) URL prefix or a local folder")
    match = _SCHEME_RE.match(text)
    if match is None:
        return "local", str(Path(text).expanduser().resolve())
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(text)
        if not parts.hostname:
            raise UsageError(f"the source {redact(text)!r} has no host: use a URL like {DEFAULT_SOURCE}")
        return "http", text
    if scheme == "file":
        parts = urllib.parse.urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(
                f"the source {redact(text)!r} names a remote host: file:// URLs must be local,"
                " like file:///data/nyc-tlc"
            )
        path = urllib.request.url2pathname(urllib.parse.unquote(parts.path))
        return "local", str(Path(path).resolve())
    raise UsageError(
        f"the source {redact(text)!r} uses {scheme}://, which is not supported:"
        " give an http(s) URL prefix or a local folder (a path or a file:// URL)"
    )


def is_local(source: str | None) -> bool:
    """True for a folder path or file:// URL, False for http(s); UsageError for anything else."""
    return _parse_source(source)[0] == "local"


def local_folder(source: str | None) -> Path:
    """The folder a local source names (is_local must be true)."""
    return Path(_parse_source(source)[1])


def _join_url(prefix: str, taxi: str, filename: str) -> str:
    # Append to the path, keeping any query string in place (signed mirrors use them).
    parts = urllib.parse.urlsplit(prefix)
    path = f"{parts.path.rstrip('/')}/{urllib.parse.quote(taxi)}/{urllib.parse.quote(filename)}"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _strip_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:password@`, and the (user, password) that was there."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urllib.parse.urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (urllib.parse.unquote(user), urllib.parse.unquote(password))


def file_url(source: str | None, taxi: str, filename: str) -> str:
    """Where a file is under a source: an http(s) URL or a file:// URL of the absolute local path.

    Any `user:password@` in the source is left out, so the result is safe to show and to record.
    """
    kind, base = _parse_source(source)
    if kind == "local":
        return (Path(base) / taxi / filename).as_uri()
    return _strip_userinfo(_join_url(base, taxi, filename))[0]


def default_cache_dir() -> Path:
    """RUNNER_CACHE_DIR, else $XDG_CACHE_HOME/nyc-taxi, else ~/.cache/nyc-taxi."""
    explicit = os.environ.get("RUNNER_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG spec says to ignore a relative XDG_CACHE_HOME.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "nyc-taxi"
    return Path.home() / ".cache" / "nyc-taxi"


# --- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where one month's file is: a local file, or a URL (its credentials apart) and its cached copy."""

    label: str  # "<file> (<taxi> <month>)", for messages
    path: Path  # the local file, or where the cache keeps the download
    url: str | None = None  # None: a local source
    credentials: tuple[str, str] | None = None


def locate(taxi: str, month: Month, filename: str, source: str | None, cache_dir: Path) -> Location:
    kind, base = _parse_source(source)
    label = f"{filename} ({taxi} {month})"
    if kind == "local":
        return Location(label, Path(base) / taxi / filename)
    url, credentials = _strip_userinfo(_join_url(base, taxi, filename))
    return Location(label, Path(cache_dir) / taxi / filename, url, credentials)


def fetch(
    taxi: str,
    month: Month,
    filename: str,
    *,
    source: str | None,
    cache_dir: Path,
    progress: Progress | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    warn: Callable[[str], None] | None = None,
) -> FetchedFile:
    """Make one month's file available on local disk and say where it is.

    HTTP: download into the cache, or revalidate a cached copy with a conditional GET. Transient
    failures (5xx, connection errors, timeouts, truncated bodies) are retried `retries` times with
    exponential backoff; 4xx are not. Raises SourceError when the file cannot be had.
    """
    where = locate(taxi, month, filename, source, cache_dir)
    if where.url is None:
        return _fetch_local(where.path, where.label, progress)

    url, credentials, target, label = where.url, where.credentials, where.path, where.label
    cached = _cached_meta(target, url)
    attempts = max(0, retries) + 1
    last_error = ""
    reached = False  # did any attempt get an HTTP response at all?
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            return _download_once(url, credentials, target, cached, label, progress, timeout)
        except _Transient as error:
            last_error = str(error)
            reached = reached or not error.unreachable

    if cached is not None and not reached:
        # Offline: we cannot tell whether the file changed. The cached copy is the best we have, but say
        # so. A server that answers (5xx, a truncated new version) is an error instead: it may well have
        # republished the file.
        when = cached.get("fetched_at") or _mtime_text(target)
        (warn or log.warning)(
            redact(
                f"{label}: could not revalidate at {url} after {attempts} attempt(s) ({last_error});"
                f" using the cached copy from {when}"
            )
        )
        return _cached_file(target, cached, url)
    raise SourceError(f"{label}: could not download {url} after {attempts} attempt(s): {last_error}")


class _Transient(Exception):
    """A failure worth retrying: 5xx, connection error, timeout, truncated transfer."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable  # no HTTP response came back at all


def _fetch_local(path: Path, label: str, progress: Progress | None) -> FetchedFile:
    if not path.is_file():
        if path.exists():
            raise SourceError(f"{label}: is not a file at {path}")
        # a folder missing the month's file is a release that has not published it: like HTTP 404
        raise SourceError(f"{label}: not found at {path}", status=404)
    digest = hashlib.sha256()
    done = 0
    try:
        total: int | None = path.stat().st_size
        with path.open("rb") as stream:
            if progress:
                progress(0, total)
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except OSError as error:
        raise SourceError(f"{label}: could not read {path}: {error}") from error
    return FetchedFile(
        path=path, size=done, sha256=digest.hexdigest(), source_url=path.as_uri(), from_cache=True
    )


def http_request(
    url: str, credentials: tuple[str, str] | None, method: str = "GET"
) -> urllib.request.Request:
    """A request to the source, with its user-agent and, when the URL carried them, credentials."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT}, method=method)
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode("ascii")
        # Unredirected: a redirect to another host (a CDN, a signed S3 URL) must not receive the password.
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def _download_once(
    url: str,
    credentials: tuple[str, str] | None,
    target: Path,
    cached: dict[str, Any] | None,
    label: str,
    progress: Progress | None,
    timeout: float,
) -> FetchedFile:
    request = http_request(url, credentials)
    if cached is not None:
        if cached.get("etag"):
            request.add_header("If-None-Match", cached["etag"])
        if cached.get("last_modified"):
            request.add_header("If-Modified-Since", cached["last_modified"])

    # A fresh opener per call so proxy settings are read from the environment as it is now.
    opener = urllib.request.build_opener()
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        status = error.code
        if status == 304 and cached is not None:
            return _cached_file(target, cached, url)
        if status in (404, 410):
            raise SourceError(f"{label}: not published at {url} (HTTP {status})", status=status) from None
        if status >= 500:
            raise _Transient(f"HTTP {status} {error.reason}") from None
        raise SourceError(f"{label}: HTTP {status} {error.reason} from {url}", status=status) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLCertVerificationError):
            # Retrying cannot fix a certificate, and it is no reason to trust the cache either.
            raise SourceError(f"{label}: TLS certificate check failed for {url}: {error.reason}") from None
        reason = error.reason
        text = f"timed out after {timeout:g} s" if isinstance(reason, TimeoutError) else str(reason)
        raise _Transient(f"could not connect: {text}", unreachable=True) from None
    except (OSError, http.client.HTTPException) as error:
        # No status line came back (timeout, reset, garbage): as good as unreachable.
        raise _Transient(_describe(error, timeout), unreachable=True) from None

    with response:
        status = getattr(response, "status", None)
        if status != 200:
            # We never ask for ranges, so 206 and friends mean a misbehaving server or redirect target.
            raise SourceError(f"{label}: unexpected HTTP {status} from {url}", status=status)
        total = _content_length(response)
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        size, sha256 = _stream_into_cache(response, target, total, label, progress, timeout)

    meta = {
        "url": url,
        "etag": etag,
        "last_modified": last_modified,
        "size": size,
        "sha256": sha256,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_meta(target, meta, label)
    return FetchedFile(path=target, size=size, sha256=sha256, source_url=url, from_cache=False)


def _stream_into_cache(
    response: http.client.HTTPResponse,
    target: Path,
    total: int | None,
    label: str,
    progress: Progress | None,
    timeout: float,
) -> tuple[int, str]:
    """Write the body to `<target>.part`, then rename it over `target`. Returns (size, sha256)."""
    part = target.with_name(target.name + PART_SUFFIX)
    digest = hashlib.sha256()
    done = 0
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            mark_cache(target.parent.parent)  # <cache_dir>/<taxi>/<file>
            out = part.open("wb")
        except OSError as error:
            raise SourceError(f"{label}: could not write the cache file {part}: {error}") from error
        with out:
            if progress:
                progress(0, total)
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as error:
                    raise _Transient(_describe(error, timeout)) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as error:
                    raise SourceError(f"{label}: could not write the cache file {part}: {error}") from error
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        # http.client returns b"" at an early EOF instead of raising: compare with Content-Length.
        if total is not None and done < total:
            raise _Transient(f"truncated transfer: received {done} of {total} bytes")
        # The old sidecar goes first: a crash in between leaves a file without a sidecar (downloaded
        # again next time), never a sidecar describing other bytes.
        target.with_name(target.name + META_SUFFIX).unlink(missing_ok=True)
        os.replace(part, target)
    except BaseException:
        # Whatever went wrong (including Ctrl-C), no half-written file stays behind.
        part.unlink(missing_ok=True)
        raise
    return done, digest.hexdigest()


def _write_meta(target: Path, meta: dict[str, Any], label: str) -> None:
    sidecar = target.with_name(target.name + META_SUFFIX)
    temporary = sidecar.with_name(sidecar.name + ".tmp")
    try:
        temporary.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(temporary, sidecar)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise SourceError(f"{label}: could not write {sidecar}: {error}") from error


# --- looking without downloading (the plan) ------------------------------------------------------

HEAD_TIMEOUT = 15.0


@dataclass(frozen=True)
class Probe:
    """What the source says about a month's file without downloading it."""

    size: int | None = None
    sha256: str | None = None  # when the bytes are at hand: a local file, or a still-valid cached copy
    missing: bool = False
    error: str | None = None


def probe(taxi: str, month: Month, filename: str, *, source: str | None, cache_dir: Path) -> Probe:
    """A local file's size and checksum; for a URL, a HEAD request, and the cached copy's checksum
    while the source's ETag (or, without one, its size) still matches it."""
    where = locate(taxi, month, filename, source, cache_dir)
    if where.url is None:
        if not where.path.is_file():
            return Probe(missing=True)
        try:
            local = _fetch_local(where.path, where.label, None)
        except SourceError as error:
            return Probe(error=str(error))
        return Probe(size=local.size, sha256=local.sha256)

    request = http_request(where.url, where.credentials, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            etag = response.headers.get("ETag")
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            return Probe(missing=True)
        return Probe(error=f"HTTP {error.code} on HEAD {redact(where.url)}")
    except OSError as error:
        return Probe(error=f"{type(error).__name__} on HEAD {redact(where.url)}")
    size = int(length) if length and length.isdigit() else None
    cached = _cached_meta(where.path, where.url)
    if cached and size == cached["size"] and (etag is None or etag == cached.get("etag")):
        return Probe(size=size, sha256=cached["sha256"])
    return Probe(size=size)


def _cached_meta(target: Path, url: str) -> dict[str, Any] | None:
    """The sidecar of a cached copy of `url`, if the copy is there and still matches it."""
    sidecar = target.with_name(target.name + META_SUFFIX)
    try:
        meta = json.loads(sidecar.read_text())
        size = target.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("url") != url:
        return None
    # A cheap check that the file is still the one described; a mismatch means download again.
    if meta.get("size") != size or not re.fullmatch(r"[0-9a-f]{64}", str(meta.get("sha256", ""))):
        return None
    return meta


def _cached_file(target: Path, meta: dict[str, Any], url: str) -> FetchedFile:
    return FetchedFile(path=target, size=meta["size"], sha256=meta["sha256"], source_url=url, from_cache=True)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(error, http.client.IncompleteRead):
        return f"truncated transfer: {error!r}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _mtime_text(path: Path) -> str:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return "an unknown date"
    return datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")


# --- cache housekeeping --------------------------------------------------------------------------


def mark_cache(cache_dir: Path) -> None:
    """Tag the folder as the runner's download cache (the Cache Directory Tagging convention:
    backup tools skip it, and `runner cache clean` only cleans a folder so tagged)."""
    tag = Path(cache_dir) / CACHE_TAG
    if not tag.exists():
        tag.write_text(f"{CACHE_TAG_SIGNATURE}\n# the nyc-taxi runner's download cache\n")


def month_file_regex(file_pattern: str) -> re.Pattern[str]:
    """Any taxi's and month's file name, laid out by the project's file pattern (var tripdata_file)."""
    escaped = re.escape(file_pattern)
    return re.compile(
        escaped.replace(re.escape("{taxi}"), "[a-z0-9_]+").replace(re.escape("{month}"), r"\d{4}-\d{2}")
    )


def clean_cache(cache_dir: Path, file_pattern: str) -> tuple[int, int]:
    """Remove what fetch() downloaded under `cache_dir`. Returns (files removed, bytes freed).

    Only a folder the runner tagged as its cache (mark_cache), and in it only files fetch() wrote:
    each download has a sidecar, so a trip file without one (a copy someone put there) stays, and
    so does everything else; a cut-off download (.part) is one of the project's month files
    (file_pattern: var tripdata_file). Taxi folders that this empties are removed; other folders are not.
    """
    month_file = month_file_regex(file_pattern)
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return 0, 0
    if not (cache_dir / CACHE_TAG).is_file():
        raise SourceError(f"{cache_dir} is not the runner's download cache (no {CACHE_TAG}): nothing removed")
    removed = freed = 0
    for folder in sorted(cache_dir.iterdir()):
        # Never follow a symlink out of the cache.
        if folder.is_symlink() or not folder.is_dir():
            continue
        names = {entry.name for entry in folder.iterdir()}
        emptied = False
        for entry in sorted(folder.iterdir()):
            if not _is_ours(entry.name, names, month_file) or (entry.is_dir() and not entry.is_symlink()):
                continue
            try:
                size = entry.lstat().st_size
                entry.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            freed += size
            emptied = True
        if emptied:  # left alone when not empty: something that is not ours lives there
            with contextlib.suppress(OSError):
                folder.rmdir()
    return removed, freed


def _is_ours(name: str, names: set[str], month_file: re.Pattern[str]) -> bool:
    """A download (it has a sidecar), its sidecar, or what an interrupted download left (.part, .tmp)."""
    if name.endswith(PART_SUFFIX) and month_file.fullmatch(name.removesuffix(PART_SUFFIX)):
        return True
    base = name
    for suffix in (META_SUFFIX + ".tmp", META_SUFFIX):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            break
    return base + META_SUFFIX in names
