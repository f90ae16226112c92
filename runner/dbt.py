"""dbt, in-process: the project is parsed once, then every call reuses the manifest.

dbt is not safe to call from several threads of one process; the runner calls it from one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from runner import signals

DBT_LOCATION = re.compile(
    r"\s*(Encountered an error while running operation: )?"
    r"(Compilation|Database|Runtime) Error in (macro|model|operation|seed|test) \S+( \(.*\))?\s*$"
)


# dbt-postgres and dbt-bigquery pass a driver's error on as text (DbtDatabaseError(str(error))),
# so for a failed node these words are all that is left to tell a warehouse that went away or
# was busy from a real error. Each is the driver's or the service's own wording.
TRANSIENT_WORDS = (
    "server closed the connection unexpectedly",  # libpq: the server died mid-statement
    "terminating connection",  # PostgreSQL: admin or crash shutdown (57P01, 57P02)
    "the database system is starting up",  # PostgreSQL 57P03
    "the database system is shutting down",
    "could not connect to server",  # libpq, before PostgreSQL 14
    "connection to server at",  # libpq 14+: "connection to server at ... failed"
    "connection to server on socket",
    "connection already closed",  # psycopg2 InterfaceError
    "due to concurrent update",  # BigQuery cancels one of two transactions that change one table
    "503 ",  # Google APIs: service unavailable
)


# The runner's dbt calls print nothing of dbt's (dbt still logs to logs/dbt.log) and write no
# manifest.json or run_results.json: rewriting the manifest cost 0.3 s or more per call, nothing
# reads them, and the ledger is the record of the runner's runs.
QUIET = ["--log-level", "none", "--no-write-json"]


class DbtError(RuntimeError):
    """A dbt call failed; the message is dbt's own, without its log decoration.

    transient: the warehouse went away or was busy (a retry may succeed), not a real error.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Dbt:
    project_dir: Path
    profiles_dir: Path
    target: str | None = None
    _runner: Any = field(default=None, repr=False)
    _errors: list[str] = field(default_factory=list, repr=False)
    _compiled: dict[str, str] = field(default_factory=dict, repr=False)
    sql_log: list[str] | None = field(default=None, repr=False)  # a list: every statement dbt sends
    # told of each node a build starts: (its place, the build's node count, what it is)
    on_node_start: Callable[[int, int, str], None] | None = field(default=None, repr=False)

    def _collect(self, event: Any) -> None:
        if event.info.level == "error" and event.info.msg:
            self._errors.append(str(event.info.msg))
        if self.sql_log is not None and event.info.name == "SQLQuery":
            self.sql_log.append(event.data.sql)
        if self.on_node_start is not None and event.info.name == "LogStartLine":
            self.on_node_start(event.data.index, event.data.total, event.data.description)

    def _common_args(self) -> list[str]:
        args = ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]
        if self.target:
            args += ["--target", self.target]
        return args

    def parse(self) -> Any:
        """Import dbt and parse the project, once; the manifest every later call reuses.

        The runner parses before it touches a month. Ctrl-C (or SIGTERM) while dbt imports and
        parses, a few seconds, takes effect when it is done: a dbt cut off there is left
        half-initialised and prints its own traceback; the run then stops having changed nothing.
        """
        if self._runner is None:
            with signals.deferred():
                from dbt.cli.main import dbtRunner
                from dbt.exceptions import UninstalledPackagesFoundError

                self._errors.clear()
                parse = ["parse", *QUIET, *self._common_args()]
                parsed = invoke_dbt(dbtRunner(callbacks=[self._collect]), parse)
                if isinstance(parsed.exception, UninstalledPackagesFoundError):
                    # a fresh checkout: packages.yml names vendored folders, installed offline
                    self._install_packages()
                    parsed = invoke_dbt(dbtRunner(callbacks=[self._collect]), parse)
            if not parsed.success:
                raise DbtError(self._message("dbt could not parse the project", parsed))
            self._runner = dbtRunner(manifest=parsed.result, callbacks=[self._collect])
        return self._runner.manifest

    def _install_packages(self) -> None:
        from dbt.cli.main import dbtRunner

        args = ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]
        installed = invoke_dbt(dbtRunner(callbacks=[self._collect]), ["deps", *QUIET, *args])
        if not installed.success:
            raise DbtError(self._message("dbt deps could not install the project's packages", installed))

    def project_settings(self) -> Any:
        """dbt_project.yml as dbt reads it (vars, paths), after the parse has set dbt's flags."""
        self.parse()
        with signals.deferred():  # dbt's modules load here: as with the parse, Ctrl-C waits
            from dbt.config.project import PartialProject
            from dbt.config.renderer import DbtProjectYamlRenderer

            return PartialProject.from_project_root(str(self.project_dir), verify_version=False).render(
                DbtProjectYamlRenderer(None, {})
            )

    def invoke(self, command: list[str]) -> Any:
        """Run one dbt command, quietly (QUIET)."""
        self.parse()
        self._errors.clear()
        with signals.noted() as interrupts:
            result = invoke_dbt(self._runner, [*command, *QUIET, *self._common_args()])
        if interrupts:  # dbt may have made an error of its own of it (its decoders catch everything)
            raise KeyboardInterrupt
        _raise_if_interrupted(result)
        if not result.success:
            message = self._message(f"dbt {command[0]} failed", result)
            raise DbtError(message, transient=_is_transient(result, message))
        return result.result

    def _message(self, fallback: str, result: Any) -> str:
        messages = [
            node.message
            for node in getattr(result.result, "results", None) or []
            if node.status in ("error", "fail") and node.message
        ]
        if result.exception is not None:
            messages.append(str(result.exception))
        text = "\n".join(messages or self._errors) or fallback
        # dbt wraps the message in where it was raised ("Compilation Error in macro x (file)") and
        # the macro call stack ("> in macro ..."); users need the message itself
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("> ") and not DBT_LOCATION.match(line)
        ]
        return "\n".join(lines) or fallback

    def built_from_files(self) -> dict[str, tuple[str, str]]:
        """The seeds and the view or table models (macros/common/node_checksums.sql): each one's relation
        in the warehouse, and the checksum of its file as dbt parsed it."""
        manifest = self.parse()
        return {
            node.name: (node.relation_name, node.checksum.checksum)
            for node in manifest.nodes.values()
            if node.package_name == manifest.metadata.project_name
            and (
                node.resource_type == "seed"
                or (node.resource_type == "model" and node.config.materialized in ("view", "table"))
            )
        }

    def compile_inline(self, sql: str) -> str:
        """SQL with the project's macros in it, compiled for the target (once per text): the runner's
        own queries use the rules the macros define instead of spelling them again."""
        if sql not in self._compiled:
            # part of starting up, like the parse: Ctrl-C takes effect once it is done (dbt cut off
            # inside a compile can turn the interrupt into a connection error and stay unusable)
            with signals.deferred():
                result = self.invoke(["compile", "--inline", sql, "--no-populate-cache"])
            self._compiled[sql] = result.results[0].node.compiled_code
        return self._compiled[sql]

    def run_operation(self, macro: str, args: dict[str, Any]) -> None:
        self.invoke(["run-operation", macro, "--args", json.dumps(args)])

    def build(
        self,
        select: list[str] | None = None,
        exclude: list[str] | None = None,
        variables: dict[str, Any] | None = None,
        populate_cache: bool = True,
        indirect: str = "cautious",
    ) -> Any:
        """dbt build. With a selection, `indirect` says which tests come along: cautious (only the
        tests of what is selected: not e.g. a reconciliation test that also reads fact_trips) or
        eager (every test that reads something selected)."""
        command = ["build"]
        if select:
            command += ["--select", *select, "--indirect-selection", indirect]
        if exclude:
            command += ["--exclude", *exclude]
        if variables:
            command += ["--vars", json.dumps(variables)]
        if not populate_cache:
            # dbt lists every relation of the schema first; the month merge asks the server itself
            command.append("--no-populate-cache")
        return self.invoke(command)


def invoke_dbt(runner: Any, args: list[str]) -> Any:
    """`runner.invoke(args)` (a dbtRunner), leaving dbt's process-wide state as it found it.

    Every dbt call makes a new adapter, and the adapter's __init__ (dbt-adapters 1.x) extends the
    module's own list DEFAULT_BASE_BEHAVIOR_FLAGS with the adapter's flags: one more entry per call,
    each rendered again at every later call (with an inspect.stack() each). A process that calls
    dbt a few times per month would get slower with every month it loads (300 calls: 0.07 s ->
    0.37 s each). The list is put back after each call.
    """
    from dbt.adapters.base import impl

    behavior_flags = list(impl.DEFAULT_BASE_BEHAVIOR_FLAGS)
    try:
        return runner.invoke(args)
    finally:
        impl.DEFAULT_BASE_BEHAVIOR_FLAGS[:] = behavior_flags


@cache
def dbt_for(project_dir: Path, target: str = "pg") -> Dbt:
    """The process's dbt for a project and a target: parsed once, then shared by the project's
    reader (runner/project.py) and the pipeline."""
    return Dbt(project_dir=project_dir, profiles_dir=project_dir / "profiles", target=target)


def _is_transient(result: Any, message: str) -> bool:
    """A connection dbt could not open is typed; a failed node's cause is only its text."""
    from dbt.adapters.exceptions import FailedToConnectError

    if isinstance(result.exception, FailedToConnectError):
        return True
    return any(words in message for words in TRANSIENT_WORDS)


def _raise_if_interrupted(result: Any) -> None:
    """dbtRunner returns Ctrl-C (and SIGTERM, which the CLI turns into it) as a result: re-raise it."""
    if isinstance(result.exception, KeyboardInterrupt):
        raise KeyboardInterrupt
