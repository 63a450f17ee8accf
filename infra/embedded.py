"""The database URL to use: ``TIERWISE_DATABASE_URL``, or an embedded PostgreSQL (``pgserver``).

The embedded server lives in ``settings.embedded_pg_dir`` and listens only on a unix
socket. pgserver keeps a list of the processes using a data folder; the server keeps
running while any of them lives and is stopped when the last one exits (from an
``atexit`` hook). A later process (``tierwise migrate`` then ``tierwise serve``) starts
it again on the same data.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path
from urllib.parse import quote

from infra.settings import Settings

EMBEDDED_DATABASE = "tierwise"
_SUPERUSER = "postgres"


def resolve_database_url(settings: Settings) -> str:
    """``settings.database_url`` when set, else a URL to the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.embedded_pg_dir)


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
