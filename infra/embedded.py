"""The database URL to use: ``TIERWISE_DATABASE_URL``, or an embedded PostgreSQL (``pgserver``).

The embedded server lives in ``settings.embedded_pg_dir`` and listens only on a unix
socket. pgserver keeps a list of the processes using a data folder; the server keeps
running while any of them lives and is stopped when the last one exits (from an
``atexit`` hook). A later process (``tierwise migrate`` then ``tierwise serve``) starts
it again on the same data.

Python runs ``atexit`` hooks on a normal exit, on ``SystemExit`` and after Ctrl-C, but not when a signal
kills it (SIGTERM's default: a plain ``kill``, a process manager, a container stop). A process that starts
the server therefore turns SIGTERM into ``SystemExit`` and SIGHUP into SIGTERM (``exit_cleanly_on_signals``);
uvicorn takes SIGTERM over while it serves, shuts down gracefully and raises it again afterwards, which
then ends the process the same clean way.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from infra.settings import Settings

EMBEDDED_DATABASE = "tierwise"
_SUPERUSER = "postgres"


def resolve_database_url(settings: Settings) -> str:
    """``settings.database_url`` when set, else a URL to the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.embedded_pg_dir)


_terminated_by: list[int] = []  # the signal that ended this process, if one did
_hooked: list[bool] = []


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    _terminated_by.append(signum)
    raise SystemExit(128 + signum)


def _end_as_signalled() -> None:
    """The last ``atexit`` hook to run (registered before the others): a process a signal ended still
    reports it so after its clean-up (supervisors see "killed by SIGTERM", exit status -15)."""
    if _terminated_by:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(_terminated_by[0], signal.SIG_DFL)
        os.kill(os.getpid(), _terminated_by[0])


def _sighup_as_sigterm(_signum: int, _frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)  # uvicorn's graceful stop while it serves, else _exit_on_sigterm


def exit_cleanly_on_signals() -> None:
    """Let SIGTERM and SIGHUP end this process through ``SystemExit``, so its ``atexit`` hooks run (pgserver
    stops the server it started there). Only the main thread can set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not _hooked:  # before pgserver's hook: atexit runs hooks last-registered first
        _hooked.append(True)
        atexit.register(_end_as_signalled)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGHUP, _sighup_as_sigterm)


def start_embedded(pgdata: Path, database: str = EMBEDDED_DATABASE, *, keep_running: bool = False) -> str:
    """Start (or reuse) the embedded server in ``pgdata``, make sure ``database`` exists, return its URL.

    ``keep_running``: don't stop the server when this process exits (for a shell script that
    starts it and hands the URL to other programs).

    The URL uses the unix-socket form ``postgresql://postgres@/db?host=/socket/dir``, which
    asyncpg and SQLAlchemy (``postgresql+asyncpg://``) both accept.
    """
    # Imported here: slow, and only needed without a database URL. Without XDG_RUNTIME_DIR (root,
    # containers) platformdirs warns at import and falls back to /tmp/runtime-<uid> for pgserver's lock.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.postgres_server import PostgresServer, get_server
        from psutil import pid_exists

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # A process killed before its atexit hook ran (SIGKILL, or SIGTERM without a handler) stays on
    # pgserver's list of users forever, and the server would never be stopped again: forget those.
    users = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if users.exists():
            users.write_text(json.dumps([pid for pid in json.loads(users.read_text()) if pid_exists(pid)]))
    if not keep_running:
        exit_cleanly_on_signals()  # before the server starts: a SIGTERM from here on stops it too
    server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    info = server.get_postmaster_info()
    if info.socket_dir is None:  # only on Windows, where pgserver listens on TCP instead
        return server.get_uri(database)

    host = quote(str(info.socket_dir), safe="/")
    port = f"&port={info.port}" if info.port and info.port != 5432 else ""

    def url(db: str) -> str:
        return f"postgresql://{_SUPERUSER}@/{quote(db)}?host={host}{port}"

    def psql(sql: str) -> str:
        cmd = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]
        return subprocess.run(
            [*cmd, url("postgres")], check=True, capture_output=True, text=True, timeout=30
        ).stdout.strip()

    literal = "'" + database.replace("'", "''") + "'"
    identifier = '"' + database.replace('"', '""') + '"'
    exists_sql = f"SELECT 1 FROM pg_database WHERE datname = {literal}"
    if psql(exists_sql) != "1":
        try:
            psql(f"CREATE DATABASE {identifier}")
        except subprocess.CalledProcessError:
            if psql(exists_sql) != "1":  # not a lost race with another process: a real failure
                raise
    return url(database)
