"""Reading a month's .csv.gz: the header check, and the stream COPY reads from.

The gzip is decompressed while COPY reads it, never held in memory or on disk. A truncated
or corrupt file fails inside COPY's transaction, so it loads nothing.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from runner.project import Month, TaxiSpec

GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


class FileError(Exception):
    """The file is not what the month needs; the message names the file, the month and the fault."""


def describe(spec: TaxiSpec, month: Month) -> str:
    return f"{spec.filename(month)} ({spec.name} {month})"


def check_header(spec: TaxiSpec, month: Month, path: Path) -> None:
    try:
        with gzip.open(path, "rb") as stream:
            first_line = stream.readline(64 * 1024)
            # a header and nothing else would "load" an empty month: refused, like any file not a month's
            first_row = stream.readline(64 * 1024) if first_line else b""
    except GZIP_ERRORS as error:
        raise FileError(f"{describe(spec, month)}: not a readable gzip file ({error})") from error
    if not first_line:
        raise FileError(f"{describe(spec, month)}: the file is empty (no header, no rows)")
    found = first_line.decode("utf-8", "replace").lstrip("\ufeff").strip().lower().split(",")
    if found != list(spec.columns):
        missing = [c for c in spec.columns if c not in found]
        unexpected = [c for c in found if c not in spec.columns]
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(unexpected)}" if unexpected else "",
                "same columns in another order" if not missing and not unexpected else "",
            )
            if part
        )
        raise FileError(f"{describe(spec, month)}: unexpected header ({detail}): {first_line[:300]!r}")
    if not first_row.strip():
        raise FileError(f"{describe(spec, month)}: a header and no rows: nothing to load")


class CsvStream:
    """File-like `read()` over the decompressed CSV, reporting progress in compressed bytes."""

    def __init__(
        self, spec: TaxiSpec, month: Month, path: Path, progress: Callable[[int], None] | None = None
    ) -> None:
        self._where = describe(spec, month)
        self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb")
        self._progress = progress
        # psycopg2 turns an exception raised in read() into a failed COPY: the real one, for the caller
        self.failure: FileError | KeyboardInterrupt | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._gzip.read(size)
            if self._progress is not None:
                self._progress(self._raw.tell())
        except GZIP_ERRORS as error:
            self.failure = FileError(f"{self._where}: truncated or corrupt gzip ({error}); nothing loaded")
            raise self.failure from error
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM while the file streams
            self.failure = stop
            raise
        return data

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
