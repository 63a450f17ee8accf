"""Where a served request's CPU goes: tierwise under uvicorn (as the suite runs it), loaded by wrk, its
server CPU per request measured from ``/proc`` and, with ``--profile``, sampled by py-spy.

    python -m bench.profile_server [--customers 10000] [--workload agent|admin|customer|deep]
                                   [--seconds 8] [--connections 8] [--profile] [--slope]

Unlike bench/profile_hot.py (app and client in one process), the client here is wrk in its own process,
so the CPU figures are the server's alone, as in bench/suite.py. ``--profile`` attaches py-spy (pip
``py-spy``: not a project dependency) and prints the functions by share of samples, their own time and
with what they call (``--top``). ``--slope`` measures pages of 10 and 100 as a support agent and
prints the CPU each extra customer on the page costs. The data set is the suite's (``--database``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import peers as P
from bench import suite as S


def _aggregate(raw: str, top: int) -> str:
    """py-spy's raw (collapsed) stacks → the functions by own and inclusive share of samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "| own % | function |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f} | {name} |" for name, n in own.most_common(top)]
    lines += ["", "| inclusive % | function |", "|---:|---|"]
    lines += [f"| {100 * n / total:.1f} | {name} |" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` → ``func (file/path tail, no line)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/wt/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _measure(wrk: str, url: str, script: str, pid: int, database: str, seconds: int, conns: int) -> tuple[float, ...]:
    meter = P.Meter(pid, database)
    meter.start()
    run = S.run_wrk(wrk, url, script, seconds, conns)
    server_s, db_s = meter.stop()
    n = max(run.requests, 1)
    return run.rps, 1000 * server_s / n, 1000 * db_s / n, float(run.errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database", default=None)
    parser.add_argument("--workload", default="agent", choices=["agent", "admin", "customer", "deep"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--slope", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    wrk = S.ensure_wrk()
    url, _ = asyncio.run(S.dataset(args.customers, args.database))
    database = url.rsplit("/", 1)[1].split("?")[0]
    ctx = asyncio.run(S.prepare(url, args.customers))
    env = {
        "TIERWISE_DATABASE_URL": url,
        "TIERWISE_RUN_WORKER": "false",
        "TIERWISE_DB_POOL_SIZE": "10",
        "TIERWISE_RATE_LIMIT_USER_PER_MINUTE": str(S.BENCH_USER_BUDGET),
        "TIERWISE_STATEMENT_TIMEOUT_MS": "0",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning", "--factory"]
    cmd += ["api.edge.app:create_app", "--port", str(S.TW_PORT)]
    tw = f"http://127.0.0.1:{S.TW_PORT}/graphql"

    def page(first: int, after: str | None = None) -> dict[str, Any]:
        return {"query": S.PAGE, "variables": {"first": first, "after": after}}

    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "agent": ("agent", page(50)),
        "admin": ("admin", page(50)),
        "customer": ("admin", {"query": S.CUSTOMER, "variables": {"id": ctx["customer_gid"]}}),
        "deep": ("admin", page(50, ctx["deep_cursor"])),
    }
    logs = Path(tempfile.mkdtemp(prefix="tierwise-profile-"))
    with S.server(cmd, env, S.TW_PORT, logs / "tierwise.log") as proc:
        who, body = bodies[args.workload]
        answer, _ = S._get(tw, body, ctx[who])
        if "errors" in answer:
            print(json.dumps(answer["errors"])[:800], file=sys.stderr)
        script = S.lua_post(body, ctx[who])
        S.run_wrk(wrk, tw, script, 2, args.connections)  # warm-up
        for r in range(args.rounds):
            rps, cpu, db, errors = _measure(wrk, tw, script, proc.pid, database, args.seconds, args.connections)
            print(
                f"{args.workload} round {r + 1}: {rps:.1f} req/s, server CPU {cpu:.2f} ms/request, "
                f"PostgreSQL {db:.2f} ms/request, non-2xx {errors:.0f}"
            )
        if args.slope:
            figures = {}
            for first in (10, 100):
                s = S.lua_post(page(first), ctx["agent"])
                S.run_wrk(wrk, tw, s, 1, args.connections)
                cpus = [_measure(wrk, tw, s, proc.pid, database, args.seconds, args.connections)[1] for _ in range(2)]
                figures[first] = min(cpus)
                print(f"agent page of {first}: server CPU {figures[first]:.2f} ms/request (best of 2)")
            print(f"each extra customer: {(figures[100] - figures[10]) / 90:.4f} ms of server CPU")
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            out = logs / "profile.txt"
            command = [spy, "record", "-p", str(proc.pid), "-r", "250", "-f", "raw", "-o", str(out)]
            # --gil: samples where the server holds the GIL, i.e. runs Python (idle waits are left out)
            command += ["-d", str(args.seconds + 1), "--gil"]
            sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            S.run_wrk(wrk, tw, script, args.seconds, args.connections)
            sampler.wait(timeout=60)
            print(_aggregate(out.read_text(), args.top))


if __name__ == "__main__":
    main()
