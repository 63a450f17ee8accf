"""The CLI on the embedded PostgreSQL (issue 18), with real processes, real signals and a real server:

- any normal way of stopping ``tierwise serve`` stops the embedded server it started: a plain ``kill``
  (SIGTERM: process managers, container stops), Ctrl-C (SIGINT), a closed terminal (SIGHUP), and a
  command that simply ends (``tierwise migrate``);
- quiet by default: no initdb output, ``pg_ctl`` command lines or Alembic revisions unless ``-v``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pgdata() -> Iterator[Path]:
    # short: the server's unix socket lives in this folder, and socket paths are limited to ~100 bytes
    folder = Path(tempfile.mkdtemp(prefix="tw-stop-"))
    try:
        yield folder / "pgdata"
    finally:
        _stop_leftover(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


def _env(pgdata: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    return {**env, "TIERWISE_EMBEDDED_PG_DIR": str(pgdata), **extra}


def _postmaster(pgdata: Path) -> int | None:
    """The pid of the server running on ``pgdata``, or None."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split("\n", 1)[0])
    return pid if psutil.pid_exists(pid) else None


def _gone(pgdata: Path, pid: int, within_s: float = 20) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return not (pgdata / "postmaster.pid").exists() or _postmaster(pgdata) is None
        time.sleep(0.2)
    return False


def _stop_leftover(pgdata: Path) -> None:
    pid = _postmaster(pgdata)
    if pid is not None:  # the test failed: don't leave a server behind
        psutil.Process(pid).terminate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.edge.cli", *args]


def test_a_command_that_ends_stops_the_server_it_started(pgdata: Path) -> None:
    done = subprocess.run(_cli("migrate"), env=_env(pgdata), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "database at" in done.stdout
    assert (pgdata / "PG_VERSION").exists()
    assert _postmaster(pgdata) is None, "tierwise migrate left the embedded server running"
    # the first run made the cluster (initdb) and ran every migration, and said nothing of it
    assert done.stderr == "", done.stderr


def test_quiet_by_default_and_detailed_with_v(pgdata: Path) -> None:
    if not (pgdata / "PG_VERSION").exists():
        test_a_command_that_ends_stops_the_server_it_started(pgdata)
    quiet = subprocess.run(_cli("roles", "list"), env=_env(pgdata), capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert "admin" in quiet.stdout
    assert quiet.stderr == ""
    for argv in (_cli("-v", "roles", "list"), _cli("roles", "list", "-v"), _cli("roles", "-v", "list")):
        loud = subprocess.run(argv, env=_env(pgdata), capture_output=True, text=True, timeout=120)
        assert loud.returncode == 0, loud.stderr
        assert "INFO pgserver" in loud.stderr, argv
        assert loud.stdout == quiet.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_stopping_serve_with_a_signal_stops_the_embedded_server(pgdata: Path, sig: signal.Signals) -> None:
    if not (pgdata / "PG_VERSION").exists():  # run alone: migrate first
        test_a_command_that_ends_stops_the_server_it_started(pgdata)
    port = _free_port()
    env = _env(pgdata, TIERWISE_RUN_WORKER="true")
    with tempfile.TemporaryFile("w+") as log:
        serve = subprocess.Popen(_cli("serve", "--port", str(port)), env=env, stdout=log, stderr=log, cwd=ROOT)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert serve.poll() is None, "tierwise serve ended by itself"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "tierwise serve did not become ready"
                time.sleep(0.3)
            postmaster = _postmaster(pgdata)
            assert postmaster is not None, "serve is ready but no embedded server runs"

            serve.send_signal(sig)
            serve.wait(timeout=60)
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
        log.seek(0)
        output = log.read()
    assert _gone(pgdata, postmaster), f"the embedded server is still running after {sig.name}:\n{output}"
    if sig is not signal.SIGINT:  # still "ended by SIGTERM" for a supervisor, after the clean-up
        assert serve.returncode == -signal.SIGTERM, output
    assert "Traceback" not in output, output
    assert "shut down cleanly" in output, output  # the app's own shutdown ran (graceful, not killed)
