"""The embedded default PostgreSQL: a private server the runner starts itself.

Used when the user has not set PGHOST. The cluster lives in one folder (`initdb -D data_dir`), listens
on 127.0.0.1 only, and keeps PostgreSQL's default durability settings. It admits only its owner: every
connection needs the password generated at initdb, kept in `<data_dir>/runner.pgpass` (libpq's password
file format, mode 600), which the runner reads and hands to libpq as PGPASSFILE. PostgreSQL refuses to
run as root, so as root every command that touches the cluster runs as the `postgres` system user
through `runuser`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from psycopg2.extensions import connection

DEFAULT_PORT = 54329
DEFAULT_DBNAME = "nyc_taxi"
DEFAULT_USER = "postgres"

# The system account that owns the cluster when the runner runs as root.
SYSTEM_USER = "postgres"
REQUIRED_BINARIES = ("postgres", "initdb", "pg_ctl")
MIN_MAJOR_VERSION = 15
STARTUP_TIMEOUT_S = 120
LOG_NAME = "server.log"
PASSWORD_FILE = "runner.pgpass"  # libpq's format (host:port:database:user:password), mode 600
# Who may connect: the owner, with the password, over loopback or the private socket (the data
# folder, mode 700). Never `trust`: any local account could connect as superuser and run commands
# as the server's system user (COPY .. FROM PROGRAM).
HBA = """# The nyc-taxi runner's embedded server: its owner only (password in runner.pgpass)
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
LOG_TAIL_LINES = 12
# Set at every start (command-line settings: neither postgresql.conf nor ALTER SYSTEM overrides them).
# With wal_level minimal, a table created or truncated in the loading transaction skips the WAL: a
# month's rows are written once, and the file is fsynced at commit instead, so a committed month still
# survives a crash (fsync and synchronous_commit stay on). The price: no replicas, no point-in-time
# recovery; this is a local development server (tests/test_durability.py kills it right after a load).
# max_wal_size: a month COPYed in several sessions is WAL-logged (1.1 GB for 7.6M rows); at the 1GB
# default that set off two checkpoints inside each such load, 2.6x a bare COPY against 2.1x (bench/).
# PostgreSQL's advice for bulk loads ("Populating a Database"); pg_wal may hold up to 4 GB.
SERVER_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "4GB"}
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class EmbeddedError(RuntimeError):
    """The embedded server cannot be found, started, stopped or reached."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _has_binaries(folder: Path) -> bool:
    return all((folder / name).is_file() and os.access(folder / name, os.X_OK) for name in REQUIRED_BINARIES)


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _system_bindirs() -> list[Path]:
    """Debian/Ubuntu layout, newest major version first."""
    found = []
    for folder in Path("/usr/lib/postgresql").glob("*/bin"):
        major = folder.parent.name
        if major.isdigit() and int(major) >= MIN_MAJOR_VERSION:
            found.append((int(major), folder))
    return [folder for _, folder in sorted(found, reverse=True)]


def _pgserver_bindir() -> Path | None:
    try:
        import pgserver  # optional wheel with bundled binaries: `pip install pgserver`
    except ImportError:
        return None
    package_dir = Path(pgserver.__file__).parent
    # The layout inside the wheel is not a documented API: look for any bin folder with the tools.
    for folder in sorted(package_dir.glob("**/bin")):
        if _has_binaries(folder):
            return folder
    return None


def find_bindir() -> Path:
    """The folder holding `postgres`, `initdb` and `pg_ctl`."""
    override = os.environ.get("RUNNER_PG_BINDIR")
    if override:
        # An explicit choice must fail loudly rather than silently fall back to other binaries.
        folder = Path(override).expanduser()
        if _has_binaries(folder):
            return folder
        raise EmbeddedError(
            f"RUNNER_PG_BINDIR={override} does not contain {', '.join(REQUIRED_BINARIES)}: "
            "point it at a PostgreSQL bin folder or unset it"
        )
    searched = ["RUNNER_PG_BINDIR (unset)"]
    # Debian's pg_config (libpq-dev) prints a bindir even when no server is installed: check it.
    from_pg_config = _pg_config_bindir()
    if from_pg_config is not None:
        searched.append(f"pg_config --bindir ({from_pg_config})")
        if _has_binaries(from_pg_config):
            return from_pg_config
    else:
        searched.append("pg_config (not on PATH)")
    system = _system_bindirs()
    searched.append(f"/usr/lib/postgresql/<{MIN_MAJOR_VERSION}+>/bin")
    for folder in system:
        if _has_binaries(folder):
            return folder
    bundled = _pgserver_bindir()
    if bundled is not None:
        return bundled
    searched.append("the pgserver package")
    raise EmbeddedError(
        f"no PostgreSQL server binaries found (searched {', '.join(searched)}): "
        "install them with `apt-get install postgresql` or `pip install pgserver`, "
        "or set RUNNER_PG_BINDIR to a folder holding postgres, initdb and pg_ctl"
    )


def default_data_dir() -> Path:
    """Where the embedded cluster lives unless the caller says otherwise."""
    override = os.environ.get("RUNNER_DATA_DIR")
    if override:
        return Path(override).expanduser().absolute()
    if _is_root():
        # Root's home is mode 700: the postgres user could not reach a cluster there.
        return Path("/var/lib/nyc-taxi/postgres")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser().absolute() / "nyc-taxi" / "postgres"


def _default_port() -> int:
    text = os.environ.get("RUNNER_PGPORT")
    if not text:
        return DEFAULT_PORT
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise EmbeddedError(f"RUNNER_PGPORT={text!r} is not a TCP port number (1-65535)")
    return int(text)


def _clean_env() -> dict[str, str]:
    """The caller's environment without libpq/PostgreSQL variables (PGHOST, PGPORT, PGDATA, ...)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    # English messages from initdb/pg_ctl, so errors read the same everywhere; locales are set explicitly.
    env.pop("LC_ALL", None)
    env["LC_MESSAGES"] = "C"
    return env


def _check_port(host: str, port: int) -> None:
    """Raise EmbeddedError when the server could not listen on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the postmaster: SO_REUSEADDR so a port in TIME_WAIT does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_taken_error(host, port) from None
            raise EmbeddedError(
                f"cannot listen on {host}:{port} ({exc.strerror}): set RUNNER_PGPORT to another port"
            ) from None


def _port_taken_error(host: str, port: int) -> EmbeddedError:
    return EmbeddedError(
        f"port {port} on {host} is already in use by another process: set RUNNER_PGPORT to a free port "
        f"for the embedded PostgreSQL (or stop what listens on {port})"
    )


def _process_serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is alive and (where /proc tells) a postmaster for `data_dir`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    if not Path("/proc/self").is_dir():
        return True  # no procfs: trust the signal check
    try:
        # The postmaster chdirs into its data directory: a reused pid from a stale pid file will not.
        return os.path.samestat(os.stat(f"/proc/{pid}/cwd"), os.stat(data_dir))
    except PermissionError:
        return True  # alive, not ours to inspect
    except OSError:
        return False  # exited, or a zombie (no cwd) after a crash


def _log_tail(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "  (no server log)"
    lines = [line for line in lines if line.strip()][-LOG_TAIL_LINES:]
    return "\n".join(f"  {line}" for line in lines) or "  (server log is empty)"


@dataclass
class ServerStatus:
    running: bool
    pid: int | None
    port: int
    data_dir: Path
    initialized: bool
    version: str | None  # server major version from PG_VERSION when initialized


class EmbeddedPostgres:
    """A private PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    host: str = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        dbname: str | None = None,
        user: str = DEFAULT_USER,
        fast_init: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute() if data_dir is not None else default_data_dir()
        self.port = port if port is not None else _default_port()
        # PGDATABASE names the database here too, as it does for dbt's profile (the course's project
        # looks for `taxi_rides_ny`): the runner and dbt then agree on it
        self.dbname = dbname or os.environ.get("PGDATABASE") or DEFAULT_DBNAME
        self.user = user
        # --no-sync for initdb only: a crash during a test's init does not matter, a real cluster's does.
        self.fast_init = fast_init
        self.settings = SERVER_SETTINGS if settings is None else settings
        self._bindir: Path | None = None

    # -- public API -------------------------------------------------------------------------------

    def start(self) -> bool:
        """Initialise if needed, start, and create the database. False if it was already running."""
        with self._locked():
            pid, running_port = self._running()
            if pid is not None:
                if running_port is not None and running_port != self.port:
                    raise EmbeddedError(
                        f"the embedded PostgreSQL in {self.data_dir} already runs on port {running_port}, "
                        f"not {self.port}: stop it first (or use port {running_port})"
                    )
                self._ensure_database()
                return False
            _check_port(self.host, self.port)
            # A pid file left by a crash whose pid now belongs to another process would make the
            # postmaster refuse to start; _running() has just shown it serves no cluster here.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            if not self._initialized():
                self._initdb()
            self._check_version()
            self._pg_ctl_start()
            self._require_password()
        self._ensure_database()
        return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown). False if it was not running."""
        if not self.data_dir.is_dir():
            return False
        with self._locked(create=False):
            pid, _ = self._running()
            if pid is None:
                return False
            result = self._run([self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
            if result.returncode != 0 and self._running()[0] is not None:
                raise EmbeddedError(
                    f"could not stop the embedded PostgreSQL in {self.data_dir}: {_one_line(result)}"
                )
            return True

    def status(self) -> ServerStatus:
        pid, running_port = self._running()
        return ServerStatus(
            running=pid is not None,
            pid=pid,
            port=running_port if running_port is not None else self.port,
            data_dir=self.data_dir,
            initialized=self._initialized(),
            version=self._cluster_version(),
        )

    def reset(self) -> None:
        """Stop the server if running and delete the cluster: the next start initialises a new one."""
        self.stop()
        if not self.data_dir.exists():
            return
        with self._locked(create=False):
            if not self.data_dir.exists():
                return  # deleted meanwhile by another process
            leftovers = {p.name for p in self.data_dir.iterdir()} - {LOG_NAME}
            # RUNNER_DATA_DIR is user input: never wipe a folder that is not a cluster (say, $HOME).
            if leftovers and not self._initialized():
                raise EmbeddedError(
                    f"refusing to delete {self.data_dir}: it is not a PostgreSQL data folder (no PG_VERSION)"
                )
            shutil.rmtree(self.data_dir)

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    def url(self) -> str:
        """A libpq URL naming the password file, never the password: psql, dbt, notebooks take it."""
        return (
            f"postgresql://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"
            f"?passfile={quote(str(self.password_file), safe='/')}"
        )

    def env(self) -> dict[str, str]:
        """libpq variables a client needs; the password through PGPASSFILE (libpq reads it)."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
            "PGPASSFILE": str(self.password_file),
        }

    def password(self) -> str:
        """The server's password, from the owner's password file."""
        try:
            line = self.password_file.read_text().strip()
        except FileNotFoundError:
            raise EmbeddedError(
                f"no password file {self.password_file}: start the embedded server (`runner db start`) "
                "as the user who owns it"
            ) from None
        except PermissionError:
            raise EmbeddedError(
                f"{self.password_file} belongs to another user: the embedded server admits only its owner"
            ) from None
        return line.rsplit(":", 1)[-1]  # token_urlsafe: no ':' or '\\' to unescape

    def connect(self, dbname: str | None = None) -> connection:
        """A psycopg2 connection (autocommit off) to `dbname`, default this server's database."""
        import psycopg2

        # Every target parameter is explicit so the caller's PG* variables cannot redirect it;
        # sslmode too, since this server has no certificate and PGSSLMODE=require would fail.
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password(),
            dbname=dbname or self.dbname,
            sslmode="disable",
            connect_timeout=10,
        )

    # -- cluster state ----------------------------------------------------------------------------

    def _initialized(self) -> bool:
        return self._read_data_file("PG_VERSION") is not None

    def _cluster_version(self) -> str | None:
        text = self._read_data_file("PG_VERSION")
        return text.strip() if text else None

    def _read_data_file(self, name: str) -> str | None:
        try:
            return (self.data_dir / name).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError as exc:
            raise EmbeddedError(
                f"cannot read {self.data_dir}: it belongs to another user (run as its owner or reset it)"
            ) from exc

    def _running(self) -> tuple[int | None, int | None]:
        """(pid, port) of the postmaster serving data_dir, or (None, None)."""
        text = self._read_data_file("postmaster.pid")
        if not text:
            return None, None
        lines = text.splitlines()
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
        if not lines or not lines[0].strip().lstrip("-").isdigit():
            return None, None
        pid = abs(int(lines[0]))
        if not _process_serves(pid, self.data_dir):
            return None, None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    @contextlib.contextmanager
    def _locked(self, create: bool = True) -> Iterator[None]:
        """Serialise start/stop/reset of one cluster across processes (flock on the data folder)."""
        while True:
            if create:
                self._make_data_dir()
            try:
                fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                if create:
                    continue
                yield  # nothing to lock: the caller finds no cluster
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A concurrent reset may have deleted the folder we waited on: lock the new one.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.data_dir))
                except FileNotFoundError:
                    same = False
                if same or not create:
                    yield
                    return
            finally:
                os.close(fd)

    def _make_data_dir(self) -> None:
        """Create the cluster folder (mode 700) and missing parents (mode 755, traversable by postgres)."""
        missing = [p for p in reversed(self.data_dir.parents) if not p.exists()]
        for parent in missing:
            with contextlib.suppress(FileExistsError):
                parent.mkdir()
                parent.chmod(0o755)  # explicit: mkdir's mode is filtered by the umask
        with contextlib.suppress(FileExistsError):
            self.data_dir.mkdir(mode=0o700)
            if _is_root():
                account = self._system_account()
                os.chown(self.data_dir, account.pw_uid, account.pw_gid)

    # -- commands ---------------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_bindir()
        return str(self._bindir / name)

    @staticmethod
    def _system_account() -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise EmbeddedError(
                f"running as root needs a {SYSTEM_USER!r} system user to own the server (PostgreSQL "
                "refuses to run as root): `apt-get install postgresql` creates it, "
                f"or `useradd --system {SYSTEM_USER}`"
            ) from None

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if _is_root():
            self._system_account()
            args = ["runuser", "-u", SYSTEM_USER, "--", *args]
        try:
            # cwd "/": the postgres user may not be able to enter the caller's working directory.
            return subprocess.run(args, capture_output=True, text=True, env=_clean_env(), cwd="/")
        except OSError as exc:
            raise EmbeddedError(f"could not run {args[0]}: {exc}") from exc

    def _initdb(self) -> None:
        leftovers = [p.name for p in self.data_dir.iterdir()]
        if leftovers:
            raise EmbeddedError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster: move it away, or set "
                "RUNNER_DATA_DIR to another folder (`runner db reset` deletes clusters only)"
            )
        if _is_root():
            account = self._system_account()
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)  # it may predate us, owned by root
        password = secrets.token_urlsafe(24)  # letters, digits, - and _: nothing to escape anywhere
        # initdb reads the password from a file (as root, as the postgres user): a private temporary one
        with tempfile.TemporaryDirectory(prefix="nyc-taxi-initdb-") as folder:
            pwfile = Path(folder) / "password"
            pwfile.write_text(password + "\n")
            pwfile.chmod(0o600)
            if _is_root():
                account = self._system_account()
                os.chown(folder, account.pw_uid, account.pw_gid)
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            base = [self._bin("initdb"), "-D", str(self.data_dir), "-U", self.user, "-E", "UTF8"]
            base += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
            if self.fast_init:
                base.append("--no-sync")
            # C.UTF-8 character classes with byte-order collation (C): deterministic and the fastest sorts.
            result = self._run([*base, "--locale=C.UTF-8", "--lc-collate=C"])
            if result.returncode != 0 and "locale" in (result.stdout + result.stderr).lower():
                result = self._run([*base, "--locale=C"])  # no C.UTF-8 on this system
        if result.returncode != 0:
            raise EmbeddedError(
                f"initdb failed for {self.data_dir}: {_one_line(result)}{self._reachability_hint()}"
            )
        self._write_hba()
        self._write_password_file(password)

    def _write_password_file(self, password: str) -> None:
        """The owner's password file: created mode 600 (never readable by anyone else, not even briefly)."""
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{self.host}:*:*:{self.user}:{password}\n")
        os.chmod(self.password_file, 0o600)

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(HBA)
        if _is_root():
            account = self._system_account()
            os.chown(hba, account.pw_uid, account.pw_gid)

    def _require_password(self) -> None:
        """A cluster made by an older runner trusts every local connection: give it a password, once."""
        hba = self.data_dir / "pg_hba.conf"
        if self.password_file.exists() and "trust" not in hba.read_text():
            return
        import psycopg2

        password = secrets.token_urlsafe(24)
        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", sslmode="disable"
        )  # still trust: the last time
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("set password_encryption = 'scram-sha-256'")
                cursor.execute(f'alter role "{self.user}" password %s', (password,))
        finally:
            connection.close()
        self._write_password_file(password)
        self._write_hba()
        result = self._run([self._bin("pg_ctl"), "reload", "-D", str(self.data_dir)])
        if result.returncode != 0:
            raise EmbeddedError(f"could not reload the embedded PostgreSQL: {_one_line(result)}")

    def _check_version(self) -> None:
        """Fail early, and clearly, when the cluster was made by another major version."""
        cluster = self._cluster_version()
        # `postgres --version` is allowed as root: no need to switch user.
        try:
            result = subprocess.run(
                [self._bin("postgres"), "--version"], capture_output=True, text=True, env=_clean_env()
            )
        except OSError as exc:
            raise EmbeddedError(f"could not run {self._bin('postgres')}: {exc}") from exc
        match = re.search(r"(\d+)(?:\.\d+)?", result.stdout)
        if cluster and match and match.group(1) != cluster:
            raise EmbeddedError(
                f"the cluster in {self.data_dir} is PostgreSQL {cluster} but the binaries in {self._bindir} "
                f"are {match.group(1)}: set RUNNER_PG_BINDIR to version {cluster} binaries, "
                "or reset the embedded server (this deletes its data)"
            )

    def _pg_ctl_start(self) -> None:
        log = self.data_dir / LOG_NAME
        offset = log.stat().st_size if log.exists() else 0
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}".encode()) > _MAX_SOCKET_PATH:
            socket_dir = ""  # too long for a Unix socket path: TCP only (the runner never uses the socket)
        options = " ".join(
            shlex.quote(option)
            for option in (
                "-c",
                f"listen_addresses={self.host}",
                "-p",
                str(self.port),
                "-c",
                f"unix_socket_directories={socket_dir}",
                *(part for name, value in self.settings.items() for part in ("-c", f"{name}={value}")),
            )
        )
        result = self._run(
            [
                self._bin("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                str(STARTUP_TIMEOUT_S),
                "-o",
                options,
            ]
        )
        if result.returncode == 0:
            return
        tail = _log_tail(log, offset)
        if "could not bind" in tail or "Address already in use" in tail:
            raise _port_taken_error(self.host, self.port)  # lost a race for the port after the check
        raise EmbeddedError(
            f"the embedded PostgreSQL failed to start ({_one_line(result)}){self._reachability_hint()}; "
            f"last lines of {log}:\n{tail}"
        )

    def _ensure_database(self) -> None:
        import psycopg2
        from psycopg2 import errors, sql

        try:
            conn = self.connect("postgres")
        except psycopg2.OperationalError as exc:
            raise EmbeddedError(
                f"the embedded PostgreSQL on {self.host}:{self.port} is not reachable: {str(exc).strip()}"
            ) from exc
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
                if cur.fetchone() is None:
                    # Another process may create it between the check and here.
                    with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        finally:
            conn.close()

    # -- messages ---------------------------------------------------------------------------------

    def _reachability_hint(self) -> str:
        """As root: name the first folder the postgres user cannot traverse, the usual cause of failures."""
        if not _is_root():
            return ""
        uid = self._system_account().pw_uid
        folders = [*reversed(self.data_dir.parents)]
        if self._bindir is not None:
            folders += [*reversed(self._bindir.parents), self._bindir]
        for folder in folders:
            try:
                info = folder.stat()
            except OSError:
                continue
            if info.st_uid != uid and not info.st_mode & 0o001:
                return (
                    f" (the {SYSTEM_USER} user cannot enter {folder}: use folders it can reach, "
                    "e.g. RUNNER_DATA_DIR under /var/lib or /tmp)"
                )
        return ""


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    text = " ".join((result.stderr or result.stdout or "").split())
    return text or f"exit code {result.returncode}"
