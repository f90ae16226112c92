"""The runner's own Postgres connection: streaming COPY into landing tables, and ledger reads.
(runner/bigquery.py is the same for BigQuery.)

Everything else the warehouse does (tables, merges, ledger writes) is dbt macros' work.
The connection comes from the standard libpq variables (PGHOST, PGPORT, ...), exactly as the
dbt profile reads them, so the runner and dbt always talk to the same server.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.csvfile import READ_SIZE, CsvChunks, CsvPart, FileError, describe
from runner.project import Month, Project, TaxiSpec
from runner.signals import noted

# where a COPY error names the line it was on: "COPY <table>, line <n>"
COPY_CONTEXT = re.compile(r"COPY \S+, line (\d+)")


class WarehouseError(Exception):
    """The warehouse failed while a month loaded (not the file's fault): the month fails, nothing is kept.

    transient: the warehouse went away or was busy, so the same month may well load if tried again.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# SQLSTATEs of a server that is going away or not there yet (crash, restart, admin shutdown);
# class 08 (connection exceptions) is tested by prefix.
SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}


def is_connection_failure(error: Exception) -> bool:
    """psycopg2's view: the connection broke or could not be made (libpq sets no SQLSTATE then)."""
    import psycopg2

    if isinstance(error, psycopg2.InterfaceError):
        return True
    code = getattr(error, "pgcode", None)
    return isinstance(error, psycopg2.OperationalError) and (
        code is None or code.startswith("08") or code in SERVER_GOING_AWAY
    )


def connection_lost(error: Exception) -> WarehouseError:
    """The server went away (a crash, a restart, the network): the user's message, in psycopg2's words."""
    detail = " ".join(str(error).split())
    return WarehouseError(
        f"the connection to the warehouse was lost ({detail}); months that finished are kept:"
        " run the same command again to load the rest",
        transient=True,
    )


def open_connection(application_name: str) -> Any:
    """A connection to the server the libpq variables name, as dbt's profile reads them."""
    import psycopg2

    try:
        return psycopg2.connect(
            "",
            application_name=application_name,
            connect_timeout=int(os.environ.get("PGCONNECT_TIMEOUT", 10)),
        )
    except psycopg2.OperationalError as error:
        raise connection_lost(error) from error


class MonthStates:
    """What both warehouses read the same way, through their own `_query`."""

    def month_states(self, rule: str, loads: str | None = None) -> list[dict[str, Any]]:
        """Per taxi and file month: the latest attempt, and the rows of the current load (`rule`).

        From the ledger, or from `loads` (dbt's relation name of stg_ingestion__loads) when it
        exists: there a running load whose loader is gone is already `interrupted`.
        """
        if loads is not None and self._query("select 1", needs=loads) is None:
            loads = None
        return self._query(month_states_sql(rule, loads or "{ledger}")) or []

    def select(self, sql: str, needs: str) -> list[dict[str, Any]] | None:
        """The rows of a compiled analysis (`runner report`); None when `needs` (a relation) is missing."""
        return self._query(sql, needs=needs)


@dataclass
class Warehouse(MonthStates):
    schema: str
    landing_schema: str
    copy_streams: int = 1  # COPY sessions per month (land)
    read_size: int = READ_SIZE  # decompressed bytes per read: a chunk a COPY session gets is about this
    _connection: Any = None
    _copy_connections: list[Any] = field(default_factory=list)

    @classmethod
    def for_project(cls, project: Project, copy_streams: int = 1) -> Warehouse:
        """The schemas as dbt's profile and sources name them (parsed for this target)."""
        return cls(schema=project.schema, landing_schema=project.landing_schema, copy_streams=copy_streams)

    def connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connection = open_connection("nyc-taxi-runner")
        return self._connection

    @contextmanager
    def _session_lock(self, key_sql: str, params: tuple = ()) -> Iterator[dict[str, Any]]:
        """A session-level advisory lock on the runner's connection, held until the block ends.

        It survives the commits inside the block and is released by the server if the runner dies.
        The block gets the session that holds it: its pid and start time (a pid can be reused).
        """
        import psycopg2

        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"select pg_advisory_lock({key_sql})", params)
                cursor.execute(
                    "select pid, backend_start::text from pg_stat_activity where pid = pg_backend_pid()"
                )
                pid, started_at = cursor.fetchone()
            connection.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise connection_lost(error) from error
        try:
            yield {"pid": pid, "started_at": started_at}
        finally:
            try:
                if not connection.closed:
                    connection.rollback()
                    with connection.cursor() as cursor:
                        cursor.execute(f"select pg_advisory_unlock({key_sql})", params)
                    connection.commit()
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                # the session is gone, and the server released its lock with it: do not hide
                # the error that brought us here behind this one
                connection.close()

    def runner_lock(self, taxi: str, month: Month) -> AbstractContextManager[dict[str, Any]]:
        """One runner per taxi and month at a time, for the whole month (download to merge).

        The macros' transaction lock serialises everything else. The block gets the session that
        holds the lock, which tripdata_begin_load records as the load's loader: when that session
        is gone, so is the load.
        """
        return self._session_lock(
            "hashtext(%s), %s", (f"tripdata-runner:{taxi}", month.year * 100 + month.month)
        )

    @contextmanager
    def merge_lock(self) -> Iterator[None]:
        """Nothing to take: months merge into their own partitions, and the ledger locks rows."""
        yield

    def models_lock(self) -> AbstractContextManager[None]:
        """One build of the models at a time on this server: two overlapping builds of one
        incremental model collide on dbt's temporary relation names."""
        return self._session_lock("hashtext('nyc_taxi:models')")

    def close(self) -> None:
        for connection in [self._connection, *self._copy_connections]:
            if connection is not None and not connection.closed:
                connection.close()

    def begin_load_options(self) -> dict[str, Any]:
        """tripdata_begin_load's options for `land`: the load gets a table of its own to COPY into."""
        return {"incoming": True}

    def land(
        self, spec: TaxiSpec, month: Month, path: Path, checksum: str, progress: Callable[[int], None]
    ) -> dict[str, Any]:
        """Stream the file into the load's own table (tripdata_begin_load made it, empty), in
        `copy_streams` COPY sessions at once; returns what the merge checks: the rows landed.

        The server computes each row's unique_row_id as it stores it, and that is most of a COPY's
        work: several sessions spread it over the server's cores. All or nothing: the sessions
        commit only when every one has stored its last row, and a failure anywhere rolls back
        all of them. A table filled by several commits is whole only once all committed, so no
        reader but this load's merge ever takes it (macros/postgres/tables.sql, adopt_incoming).
        One session truncates the table first instead, which lets COPY write the rows frozen and,
        on a server with wal_level minimal, without WAL.
        """
        import psycopg2
        from psycopg2 import sql

        incoming = sql.Identifier(self.landing_schema, spec.incoming_table(month))
        streams = max(1, self.copy_streams)
        copy = sql.SQL("copy {} ({}) from stdin with (format csv{})").format(
            incoming,
            sql.SQL(", ").join(map(sql.Identifier, spec.columns)),
            sql.SQL(", freeze true" if streams == 1 else ""),
        )
        connections = self._stream_connections(streams)
        with (
            CsvChunks(spec, month, path, streams, progress, self.read_size) as chunks,
            noted() as interrupts,
        ):
            try:
                if streams == 1:
                    with connections[0].cursor() as cursor:
                        cursor.execute(sql.SQL("truncate {}").format(incoming))
                outcomes = _copy_in_streams(connections, copy.as_string(connections[0]), chunks)
                failures = [
                    (part, outcome)
                    for part, outcome in zip(chunks.parts, outcomes, strict=True)
                    if isinstance(outcome, BaseException) and not part.aborted
                ]
                if interrupts:  # Ctrl-C or SIGTERM, raised in a read() and turned by psycopg2 into an error
                    raise KeyboardInterrupt
                if chunks.failure is not None:
                    raise chunks.failure
                if failures:
                    part, error = failures[0]
                    raise self._copy_failure(spec, month, part, error) from error
                try:
                    for connection in connections:
                        connection.commit()
                except psycopg2.Error as error:
                    raise self._copy_failure(spec, month, None, error) from error
            except BaseException as error:
                for connection in connections:
                    if not connection.closed:  # a lost connection has nothing to roll back
                        with suppress(psycopg2.Error):
                            connection.rollback()
                if streams > 1:
                    self._empty(connections[0], incoming)
                if isinstance(error, psycopg2.Error):  # before any COPY began (the truncate)
                    raise self._copy_failure(spec, month, None, error) from error
                raise
        return {"landed_rows": sum(outcomes)}

    def _copy_failure(
        self, spec: TaxiSpec, month: Month, part: CsvPart | None, error: BaseException
    ) -> Exception:
        """A COPY stream's error as the user's: COPY's own words name the line and column of a bad
        row (told as the file's line), or the warehouse failed."""
        import psycopg2

        if not isinstance(error, psycopg2.Error):
            return error  # not the warehouse's: a bug, raised as it is
        where, detail = describe(spec, month), " ".join(str(error).split())
        if part is not None:
            detail = COPY_CONTEXT.sub(
                lambda found: f"COPY {spec.landing_table(month)}, line {part.file_line(int(found[1]))}",
                detail,
            )
        if isinstance(error, psycopg2.DataError | psycopg2.IntegrityError):
            return FileError(f"{where}: the warehouse rejected the file: {detail}")
        return WarehouseError(
            f"{where}: COPY into the landing table failed: {detail}", transient=is_connection_failure(error)
        )

    def _stream_connections(self, streams: int) -> list[Any]:
        """The runner's connection, and one more per further COPY stream (kept for the next month)."""
        open_ones = [c for c in self._copy_connections if not c.closed]
        for spare in open_ones[streams - 1 :]:
            spare.close()
        self._copy_connections = open_ones[: streams - 1]
        while len(self._copy_connections) < streams - 1:
            self._copy_connections.append(open_connection("nyc-taxi-runner copy"))
        return [self.connect(), *self._copy_connections]

    def _empty(self, connection: Any, incoming: Any) -> None:
        """Best effort after a failed multi-session COPY: the rolled-back rows' space back at once
        (a table the load made, so nobody else's rows); the next load of the month makes it anew."""
        import psycopg2
        from psycopg2 import sql

        if connection.closed:  # the server went away: nothing to give back now
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("truncate {}").format(incoming))
            connection.commit()
        except psycopg2.Error:
            with suppress(psycopg2.Error):
                connection.rollback()

    def _query(self, query: str, params: tuple = (), needs: str | None = None) -> list[dict[str, Any]] | None:
        """Rows as dicts; None when the relation the query needs (default: the ledger) does not exist."""
        import psycopg2

        ledger = f'"{self.schema}".load_ledger'
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("select to_regclass(%s) is not null", (needs or ledger,))
                if not cursor.fetchone()[0]:
                    return None
                cursor.execute(query.replace("{ledger}", ledger), params)
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise connection_lost(error) from error
        finally:
            if not connection.closed:
                connection.rollback()  # read-only: end the transaction, hold no locks

    def load(self, load_id: str) -> dict[str, Any] | None:
        rows = self._query("select * from {ledger} where load_id = %s", (load_id,))
        return rows[0] if rows else None

    def model_loads(self, relation: str) -> list[dict[str, Any]] | None:
        """The model_loads view (dbt's relation name), or None when the models were never built."""
        return self._query(f"select * from {relation}", needs=relation)

    def relation_comment(self, relation: str) -> str | None:
        rows = self._query(
            "select obj_description(to_regclass(%s), 'pg_class') as comment", (relation,), needs=relation
        )
        return rows[0]["comment"] if rows else None

    def current_loads(
        self, rule: str, taxi: str | None = None, month: Month | None = None
    ) -> list[dict[str, Any]]:
        """The months' current loads: `rule` is the ledger's reading rule as dbt compiled it
        (macros/common/ledger.sql current_loads); one taxi and month, or all of them."""
        if taxi is None or month is None:
            return self._query(f"select * from ({rule}) as current_loads") or []
        return (
            self._query(
                f"select * from ({rule}) as current_loads where taxi = %s and file_month = %s",
                (taxi, month.first_day),
            )
            or []
        )


def _copy_in_streams(connections: list[Any], copy: str, chunks: CsvChunks) -> list[int | BaseException]:
    """COPY on each connection at once, each reading its part of `chunks`: the first in this
    thread (a Ctrl-C lands in its read(), as in a one-session COPY), the others in threads of their
    own. Returns each stream's row count, or what ended it; the first to fail stops the others."""
    outcomes: list[int | BaseException] = [0] * len(connections)

    def copy_in(stream: int) -> None:
        try:
            with connections[stream].cursor() as cursor:
                cursor.copy_expert(copy, chunks.parts[stream])
                outcomes[stream] = cursor.rowcount
        except BaseException as error:
            outcomes[stream] = error
            chunks.abort()

    threads = [
        threading.Thread(target=copy_in, args=(stream,), name=f"copy-stream-{stream}", daemon=True)
        for stream in range(1, len(connections))
    ]
    for thread in threads:
        thread.start()
    try:
        copy_in(0)
        for thread in threads:
            thread.join()
    except BaseException:  # interrupted while waiting: the streams stop at their next read
        chunks.abort()
        for thread in threads:
            thread.join()
        raise
    return outcomes


def month_states_sql(rule: str, attempts: str) -> str:
    """Each month's latest attempt, with the rows of its current load: SQL both warehouses run."""
    return f"""
        select taxi, file_month, state, action, error, started_at, finished_at, load_id, rows_loaded
        from (
            select
                attempts.taxi, attempts.file_month, attempts.state, attempts.action, attempts.error,
                attempts.started_at, attempts.finished_at, attempts.load_id, current_loads.rows_loaded,
                row_number() over (
                    partition by attempts.taxi, attempts.file_month order by attempts.started_at desc
                ) as recency
            from {attempts} as attempts
            left join ({rule}) as current_loads
                on attempts.taxi = current_loads.taxi and attempts.file_month = current_loads.file_month
        ) as months
        where recency = 1
        order by taxi, file_month
    """
