"""Reading a month's .csv.gz: its header line, and the stream COPY reads from.

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


def read_header(path: Path) -> tuple[str, bool]:
    """The file's first line, and whether gzip can read it at all. The rules a file must follow are
    the dbt project's (macros/common/file_rules.sql): the runner hands them what it read."""
    try:
        with gzip.open(path, "rb") as stream:  # an empty file reads as empty, not as unreadable
            first_line = stream.readline(64 * 1024)
    except GZIP_ERRORS:
        return "", False
    return first_line.decode("utf-8", "replace").strip(), True


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
        self.failure: FileError | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._gzip.read(size)
            if self._progress is not None:
                self._progress(self._raw.tell())
        except GZIP_ERRORS as error:
            self.failure = FileError(f"{self._where}: truncated or corrupt gzip ({error}); nothing loaded")
            raise self.failure from error
        return data

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
