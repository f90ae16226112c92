"""Reading a month's .csv.gz: its header line, and the whole-line chunks COPY streams read.

The gzip is decompressed while COPY reads it, never held in memory or on disk. A truncated
or corrupt file fails inside COPY's transaction, so it loads nothing.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from isal import igzip, isal_zlib

from runner.project import Month, TaxiSpec

# python-isal's gzip: the same format and API as the standard library's, decompressed about 3x faster
GZIP_ERRORS = (EOFError, igzip.BadGzipFile, isal_zlib.error)
READ_SIZE = 1 << 20  # decompressed bytes per read: bounded memory on any file size


class FileError(Exception):
    """The file is not what the month needs; the message names the file, the month and the fault."""


class StreamAborted(Exception):
    """Another COPY stream of the same file failed (or was interrupted): this one stops too."""


def describe(spec: TaxiSpec, month: Month) -> str:
    return f"{spec.filename(month)} ({spec.name} {month})"


def read_header(path: Path) -> tuple[str, bool]:
    """The file's first line, and whether gzip can read it at all. The rules a file must follow are
    the dbt project's (macros/common/file_rules.sql): the runner hands them what it read."""
    try:
        with igzip.open(path, "rb") as stream:  # an empty file reads as empty, not as unreadable
            first_line = stream.readline(64 * 1024)
    except GZIP_ERRORS:
        return "", False
    return first_line.decode("utf-8", "replace").strip(), True


class CsvChunks:
    """The file's data lines (its header line left out), handed to `streams` COPY streams in
    chunks of whole lines: each stream reads the next chunk when it is ready for one.

    A chunk ends at a line end outside quotes, so no stream gets part of a row. Each stream
    remembers where its chunks start in the file, so the line a COPY stream names in an error
    is told as the file's line (`file_line`).
    """

    def __init__(
        self,
        spec: TaxiSpec,
        month: Month,
        path: Path,
        streams: int = 1,
        progress: Callable[[int], None] | None = None,
        read_size: int = READ_SIZE,
    ) -> None:
        self._where = describe(spec, month)
        self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._gzip = igzip.IGzipFile(fileobj=self._raw, mode="rb")
        self._progress = progress
        self._read_size = read_size
        self._lock = threading.Lock()
        self._pending = b""  # the start of a line the next chunk finishes
        self._header_left = True
        self._exhausted = False
        self._next_line = 2  # the file's line number of the next chunk's first line (line 1: header)
        self._aborted = False
        # psycopg2 turns an exception raised in read() into a failed COPY: the real one, for the caller
        self.failure: FileError | None = None
        self.parts = [CsvPart(self) for _ in range(streams)]

    def abort(self) -> None:
        """Every stream's next read fails with StreamAborted: their COPYs end, and roll back."""
        self._aborted = True

    def _next_chunk(self, part: CsvPart) -> bytes:
        with self._lock:
            if self._aborted:
                raise StreamAborted(f"{self._where}: another COPY stream of the file failed")
            chunk = self._whole_lines()
            if chunk:
                part.starts.append((part.lines, self._next_line))
                records = count_records(chunk)
                part.lines += records
                self._next_line += records
            return chunk

    def _whole_lines(self) -> bytes:
        """The next run of whole lines (b"" at the end of the file)."""
        while True:
            if self._exhausted:
                rest, self._pending = self._pending, b""
                return rest  # a last line without a line end; or b""
            block = self._read()
            if not block:
                self._exhausted = True
                continue
            data = self._pending + block
            if self._header_left:
                end = data.find(b"\n")
                if end < 0:
                    self._pending = data
                    continue
                data, self._header_left = data[end + 1 :], False
            cut = last_line_end(data)
            if cut < 0:  # no whole line yet (a long line, or a quoted field across blocks)
                self._pending = data
                continue
            self._pending = data[cut + 1 :]
            return data[: cut + 1]

    def _read(self) -> bytes:
        try:
            block = self._gzip.read(self._read_size)
            if self._progress is not None:
                self._progress(self._raw.tell())
        except GZIP_ERRORS as error:
            self.failure = FileError(f"{self._where}: truncated or corrupt gzip ({error}); nothing loaded")
            self._aborted = True
            raise self.failure from error
        return block

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()

    def __enter__(self) -> CsvChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CsvPart:
    """One COPY stream's file-like view of CsvChunks: `read()` gives it the next chunk."""

    def __init__(self, chunks: CsvChunks) -> None:
        self._chunks = chunks
        self.starts: list[tuple[int, int]] = []  # per chunk: lines this stream had before it, its file line
        self.lines = 0
        self.aborted = False  # ended by StreamAborted, not by a fault of its own

    def read(self, size: int = -1) -> bytes:
        try:
            return self._chunks._next_chunk(self)
        except StreamAborted:
            self.aborted = True
            raise

    def file_line(self, line: int) -> int:
        """The file's line number of this stream's line `line` (COPY counts from 1)."""
        at = bisect.bisect_right(self.starts, (line - 1, float("inf"))) - 1
        if at < 0:
            return line
        before, first_line = self.starts[at]
        return first_line + (line - 1 - before)


def last_line_end(data: bytes) -> int:
    """The position of the last line end in `data` that is outside quotes, or -1.

    `data` starts at the start of a line, outside quotes (CSV: a quote opens or closes a quoted
    field, and a doubled quote inside one does both), so a line end is outside quotes when an even
    number of quotes comes before it.
    """
    cut = data.rfind(b"\n")
    quotes_odd = data.count(b'"', 0, cut) % 2 if cut >= 0 else 0
    while cut >= 0 and quotes_odd:
        previous = data.rfind(b"\n", 0, cut)
        quotes_odd ^= data.count(b'"', previous + 1, cut) % 2
        cut = previous
    return cut


def count_records(chunk: bytes) -> int:
    """The CSV records in a chunk of whole lines: its line ends outside quotes, plus a last line
    without one (COPY counts records: a quoted field may hold line ends). Between the chunk's
    quotes, every other stretch is outside them."""
    outside_quotes = chunk.split(b'"')[::2] if b'"' in chunk else [chunk]
    records = sum(stretch.count(b"\n") for stretch in outside_quotes)
    return records + (0 if chunk.endswith(b"\n") else 1)
