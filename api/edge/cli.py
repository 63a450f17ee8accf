"""The ``tierwise`` command: serve, migrate, seed, retier, token issue, roles, keys, schema, documents, import."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from api.usecases.caller import CLI
from infra.settings import Settings


def _url(settings: Settings) -> str:
    from infra.embedded import resolve_database_url

    return resolve_database_url(settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.edge.app import create_app
    from api.edge.observability import configure_logging

    configure_logging(settings)
    # On SIGTERM uvicorn stops accepting connections, lets requests in flight finish (at most
    # shutdown_grace_s), then runs the app's shutdown: the job worker finishes its running jobs.
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,  # logging is configured above (JSON in production)
        log_level=settings.log_level.lower(),
        access_log=False,  # tierwise writes its own access line, without query strings
        proxy_headers=True,
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_s), 1),
        timeout_keep_alive=max(int(settings.keep_alive_timeout_s), 1),
    )
    return 0


def cmd_worker(_args: argparse.Namespace, settings: Settings) -> int:
    """A dedicated job worker (``tierwise serve`` also runs one unless TIERWISE_RUN_WORKER=false)."""
    from infra.db import create_engine
    from infra.jobs import JobDeps, create_job_app, registrars, run_worker

    async def run() -> int:
        url = _url(settings)
        engine = create_engine(url, settings)
        jobs = create_job_app(url, JobDeps(engine=engine, settings=settings), registrars())
        try:
            async with jobs.open_async():
                await run_worker(jobs, settings)
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from infra.migrate import head_revision, upgrade

    upgrade(_url(settings))
    print(f"database at {head_revision()}")
    return 0


_DEMO_MISSING = (
    "tierwise seed: the demo data set is development-only and not installed here (production images leave "
    "it out). Run it from a source checkout: pip install -e '.[demo]' (scripts/dev does), then tierwise seed."
)


def _load_demo_seed() -> Any:
    """The demo seed (``demo/seed.py``, dev-only), or None with the reason printed.

    Imported by name at run time: the runtime packages never import ``demo`` (an import contract), and a
    production install has neither the package nor Faker.
    """
    import importlib

    try:
        return importlib.import_module("demo.seed")
    except ModuleNotFoundError as exc:
        if exc.name == "demo" or (exc.name or "").startswith("demo."):
            print(_DEMO_MISSING, file=sys.stderr)
        elif exc.name == "faker":
            print(
                "tierwise seed: the demo data set needs Faker, which is an extra: pip install -e '.[demo]' "
                "in a source checkout (scripts/dev installs it).",
                file=sys.stderr,
            )
        else:
            raise
        return None


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    demo = _load_demo_seed()
    if demo is None:
        return 1
    from infra.db import create_engine

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            if args.if_empty and not await demo.is_empty(engine):
                print("database has customers already: not seeding")
                return 0
            # a bar on a terminal, plain lines in a log or a pipe
            on_terminal = sys.stderr.isatty()
            lines = None if on_terminal else (lambda line: print(line, file=sys.stderr, flush=True))
            report = await demo.seed(engine, args.customers, seed=args.seed, progress=on_terminal, lines=lines)
            print(report.summary())
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_token_issue(args: argparse.Namespace, settings: Settings) -> int:
    from api.edge.auth import issue_staff_token

    print(issue_staff_token(settings, args.sub, ttl_s=args.ttl))
    return 0


def cmd_retier(args: argparse.Namespace, settings: Settings) -> int:
    """The full re-tier (metrics and tiers of every customer), batched and resumable, with progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from infra.db import create_engine
    from infra.tiering import RetierBusy, RunProgress, run_full_retier

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            with Progress(
                TextColumn("[bold]re-tier[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[changes]} changes"),
                TimeElapsedColumn(),
                disable=not sys.stderr.isatty(),
            ) as bar:
                task = bar.add_task("", total=None, changes=0)

                def show(p: RunProgress) -> None:
                    resumed = f", resumed at {p.resumed_from}" if p.resumed_from else ""
                    bar.update(
                        task,
                        total=p.total,
                        completed=p.done,
                        changes=p.changes,
                        description=f"run {p.run_id}, policy v{p.policy_version}{resumed}",
                    )

                try:
                    result = await run_full_retier(
                        engine, actor="cli", batch_size=args.batch_size, on_progress=show, max_batches=args.max_batches
                    )
                except RetierBusy as exc:
                    print(f"tierwise: {exc}", file=sys.stderr)
                    return 1
            if result is None:
                print("no active tier policy: nothing to do")
                return 0
            state = "done" if result.finished else f"stopped after {len(result.timings)} batches (resume: run again)"
            print(
                f"run {result.run_id} under policy v{result.policy_version}: "
                f"{result.done} of {result.total} customers, "
                f"{result.changes} tier changes, {result.grace_rows} grace periods started or ended, "
                f"{sum(result.timings):.1f} s in {len(result.timings)} batches; {state}"
            )
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Encryption keys: generate a key line, count values per key id, rotate to the current key."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from infra import crypto
    from infra.db import create_engine
    from infra.keyrotation import RotationProgress, key_status, rotate, v1_status

    if args.keys_cmd == "generate":
        print(crypto.generate_key() if args.blind_index else crypto.generate_key_line(args.id))
        return 0

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            if args.keys_cmd == "status":
                ring = crypto.current()
                print(f"current key id: {ring.current_id} (configured: {', '.join(ring.key_ids)})")
                async with engine.connect() as conn:
                    legacy = await v1_status(conn)
                    for column, counts in (await key_status(conn)).items():
                        shown = ", ".join(f"{k}: {n}" for k, n in counts.items()) or "no values"
                        print(f"{column:<24} {shown}; version 1 tokens left: {legacy[column]}")
                return 0
            with Progress(
                TextColumn("[bold]rotate[/bold] {task.description:<16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[values]} values re-encrypted"),
                TimeElapsedColumn(),
                disable=not sys.stderr.isatty(),
            ) as bar:
                tasks: dict[str, Any] = {}

                def show(p: RotationProgress) -> None:
                    if p.table not in tasks:
                        tasks[p.table] = bar.add_task(p.table, total=p.rows_total, values=0)
                    bar.update(tasks[p.table], total=p.rows_total, completed=p.rows_done, values=p.values_rotated)

                report = await rotate(
                    engine, batch_size=args.batch_size, max_batches=args.max_batches, on_progress=show
                )
            state = "done" if report.finished else "stopped early (resume: run again)"
            print(
                f"re-encrypted {report.total} values under key {report.current_key_id} "
                f"({report.upgraded_v1} version 1 tokens upgraded to version 2) "
                f"in {report.batches} batches, {report.seconds:.1f} s; "
                f"{report.skipped_concurrent} changed concurrently (left as written); {state}"
            )
            if report.unreadable:
                print(
                    f"{report.unreadable} values fail their integrity check (moved or altered; see the log): "
                    "left as they are"
                )
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_schema(_args: argparse.Namespace, _settings: Settings) -> int:
    from api.graphql.schema import build_schema

    print(str(build_schema()))
    return 0


def _admin_command(settings: Settings, action: Callable[[Any], Awaitable[str]]) -> int:
    """Run one administration use-case in a transaction; it is audited (actor ``cli``) and every
    running instance picks it up through NOTIFY."""
    from infra.db import create_engine

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            async with engine.connect() as conn:
                message = await action(conn)
                await conn.commit()
            print(message)
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_roles(args: argparse.Namespace, settings: Settings) -> int:
    from api.usecases import access

    async def action(conn: Any) -> str:
        if args.roles_cmd == "assign":
            await access.assign_role(conn, CLI, args.user, args.role)
            return f"user:{args.user} now has role {args.role}"
        if args.roles_cmd == "unassign":
            await access.unassign_role(conn, CLI, args.user, args.role)
            return f"user:{args.user} no longer has role {args.role}"
        if args.roles_cmd == "create":
            await access.create_role(conn, CLI, args.name, args.description, args.inherits)
            return f"role {args.name} created"
        if args.roles_cmd == "delete":
            await access.delete_role(conn, CLI, args.name)
            return f"role {args.name} deleted"
        roles = await access.list_roles(conn, await access.load_policy(conn))
        return "\n".join(f"{r.name:<16} {r.description}" for r in roles)

    return _admin_command(settings, action)


def cmd_grants(args: argparse.Namespace, settings: Settings) -> int:
    from api.usecases import access

    async def action(conn: Any) -> str:
        if args.grants_cmd == "list":
            policy = await access.load_policy(conn)
            return "\n".join(f"{r.ptype}, " + ", ".join(v for v in r.values if v) for r in policy.rules)
        fn = access.grant if args.grants_cmd == "grant" else access.revoke
        version = await fn(conn, CLI, args.role, args.object, args.action, args.effect)
        return f"{args.grants_cmd}: {args.effect} {args.action} on {args.object} for {args.role} (policy v{version})"

    return _admin_command(settings, action)


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from api.usecases import access

    async def action(conn: Any) -> str:
        if args.tokens_cmd == "create":
            command = access.CreatePartnerToken(
                partner=args.partner,
                name=args.name,
                scopes=args.scope,
                role=args.role,
                allow_arbitrary_documents=args.allow_arbitrary_documents,
            )
            created = await access.create_partner_token(conn, CLI, command)
            return f"token {created.row['id']} for {args.partner} (shown once, keep it safe):\n{created.token}"
        if args.tokens_cmd == "revoke":
            await access.revoke_partner_token(conn, CLI, args.id)
            return f"token {args.id} revoked"
        if args.tokens_cmd == "arbitrary-documents":
            allow = args.setting == "on"
            await access.set_partner_token_arbitrary_documents(conn, CLI, args.id, allow)
            return f"token {args.id} may {'now' if allow else 'no longer'} send documents that are not registered"
        rows = await access.list_partner_tokens(conn, CLI)
        return "\n".join(
            f"{r['id']}  {r['name']:<24} role={r['role']} scopes={','.join(r['scopes'])}"
            f"{'  arbitrary-documents' if r['allow_arbitrary_documents'] else ''}"
            f"{'  REVOKED' if r['revoked_at'] else ''}"
            for r in rows
        )

    return _admin_command(settings, action)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from api.edge.import_cli import cmd_import as run

    return run(args, settings, _url(settings))


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    """Trusted documents: register .graphql files (or a build's manifest), list, remove."""
    from api.edge.documents import DocumentRejected, check_document, parse_hash, read_sources, register, remove
    from api.edge.limits import Limits
    from infra.repos import documents as repo

    if args.documents_cmd == "register":
        from api.graphql.schema import build_schema

        schema = build_schema()._schema
        limits = Limits.from_settings(settings)
        try:
            checked = [check_document(schema, text, source, limits) for source, text in read_sources(args.files)]
        except (DocumentRejected, OSError) as exc:
            print(f"tierwise: {exc}", file=sys.stderr)
            return 1

        async def registering(conn: Any) -> str:
            added = set(await register(conn, checked, actor="cli"))
            lines = [
                f"{'registered' if r.hash in added else 'known     '}  sha256:{r.hash}  "
                f"{','.join(n or '(anonymous)' for n in r.operation_names)}  {r.source}"
                for r in checked
            ]
            lines.append(f"{len(added)} registered, {len(checked) - len(added)} known already")
            return "\n".join(lines)

        return _admin_command(settings, registering)

    if args.documents_cmd == "remove":
        hashes = [parse_hash(h) for h in args.hashes]
        if None in hashes:
            print("tierwise: a hash is sha256:<64 hex digits> or the 64 hex digits alone", file=sys.stderr)
            return 1

        async def removing(conn: Any) -> str:
            removed = await remove(conn, [h for h in hashes if h], actor="cli")
            missing = len(hashes) - len(removed)
            lines = [f"removed  sha256:{h}" for h in removed]
            return "\n".join([*lines, f"{len(removed)} removed, {missing} not registered"])

        return _admin_command(settings, removing)

    async def listing(conn: Any) -> str:
        rows = await repo.list_all(conn)
        lines = [
            f"sha256:{r['hash']}  {','.join(n or '(anonymous)' for n in r['operation_names']):<32} "
            f"{r['registered_at']:%Y-%m-%d %H:%M} {r['registered_by']:<8} {r['source'] or ''}"
            for r in rows
        ]
        return "\n".join([*lines, f"{len(rows)} documents registered"])

    return _admin_command(settings, listing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema to the code's head").set_defaults(fn=cmd_migrate)
    sub.add_parser("worker", help="run a job worker (scheduled re-tiering, SLA sweeps…)").set_defaults(fn=cmd_worker)

    seed = sub.add_parser(
        "seed", help="load realistic, deterministic demo data (development only: needs tierwise[demo])"
    )
    seed.add_argument("--customers", type=int, default=2000)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if there are customers already")
    seed.set_defaults(fn=cmd_seed)

    token = sub.add_parser("token", help="staff tokens").add_subparsers(dest="token_cmd", required=True)
    issue = token.add_parser("issue", help="print a staff JWT (development)")
    issue.add_argument("--sub", required=True, help="the user id (roles are assigned with `tierwise roles`)")
    issue.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    issue.set_defaults(fn=cmd_token_issue)

    roles = sub.add_parser("roles", help="role assignments").add_subparsers(dest="roles_cmd", required=True)
    for name in ("assign", "unassign"):
        p = roles.add_parser(name)
        p.add_argument("user")
        p.add_argument("role")
        p.set_defaults(fn=cmd_roles)
    roles.add_parser("list").set_defaults(fn=cmd_roles)
    create = roles.add_parser("create")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--inherits", default=None, help="a role whose grants this one inherits")
    create.set_defaults(fn=cmd_roles)
    delete = roles.add_parser("delete")
    delete.add_argument("name")
    delete.set_defaults(fn=cmd_roles)

    grants = sub.add_parser("grants", help="field grants of roles").add_subparsers(dest="grants_cmd", required=True)
    grants.add_parser("list", help="every rule of the policy").set_defaults(fn=cmd_grants)
    for name in ("grant", "revoke"):
        g = grants.add_parser(name)
        g.add_argument("role")
        g.add_argument("object", help="Type.field, Type.* or an operation such as Mutation.openComplaint")
        g.add_argument("action", choices=["read", "read_masked", "write"])
        g.add_argument("--effect", choices=["allow", "deny"], default="allow")
        g.set_defaults(fn=cmd_grants)

    tokens = sub.add_parser("tokens", help="partner API tokens").add_subparsers(dest="tokens_cmd", required=True)
    tc = tokens.add_parser("create")
    tc.add_argument("--partner", required=True)
    tc.add_argument("--name", required=True)
    tc.add_argument("--role", default="partner")
    tc.add_argument("--scope", action="append", help="e.g. read:Customer.* (repeatable; default read:* write:*)")
    tc.add_argument(
        "--allow-arbitrary-documents",
        action="store_true",
        help="in trusted-documents mode, let this token send documents that are not registered",
    )
    tc.set_defaults(fn=cmd_tokens)
    ta = tokens.add_parser("arbitrary-documents", help="allow (on) or refuse (off) unregistered documents")
    ta.add_argument("id")
    ta.add_argument("setting", choices=["on", "off"])
    ta.set_defaults(fn=cmd_tokens)
    tr = tokens.add_parser("revoke")
    tr.add_argument("id")
    tr.set_defaults(fn=cmd_tokens)
    tokens.add_parser("list").set_defaults(fn=cmd_tokens)

    retier = sub.add_parser("retier", help="recompute metrics and re-tier every customer (resumes a stopped run)")
    retier.add_argument("--batch-size", type=int, default=50_000, help="customers per transaction")
    retier.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")
    retier.set_defaults(fn=cmd_retier)

    keys = sub.add_parser("keys", help="encryption keys at rest").add_subparsers(dest="keys_cmd", required=True)
    kg = keys.add_parser("generate", help="print a fresh <key id>:<base64 key> for TIERWISE_ENCRYPTION_KEYS")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    kg.add_argument("--id", default=f"k{today}", help="the key id (default kYYYYMMDD, today)")
    kg.add_argument("--blind-index", action="store_true", help="print a bare key for TIERWISE_BLIND_INDEX_KEY")
    kg.set_defaults(fn=cmd_keys)
    keys.add_parser("status", help="values per key id of every encrypted column").set_defaults(fn=cmd_keys)
    kr = keys.add_parser(
        "rotate", help="re-encrypt every value under the current key, bound to its row (online, resumable)"
    )
    kr.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    kr.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")
    kr.set_defaults(fn=cmd_keys)

    sub.add_parser("schema", help="print the GraphQL schema (SDL)").set_defaults(fn=cmd_schema)

    from api.edge.import_cli import add_parser as add_import_parser

    add_import_parser(sub, cmd_import)

    documents = sub.add_parser("documents", help="trusted documents (TIERWISE_DOCUMENTS_MODE=trusted)")
    docs_sub = documents.add_subparsers(dest="documents_cmd", required=True)
    dr = docs_sub.add_parser("register", help="validate and register .graphql files or a persisted-documents manifest")
    dr.add_argument("files", nargs="+", help="a .graphql file is one document; a .json file maps sha256 → document")
    dr.set_defaults(fn=cmd_documents)
    docs_sub.add_parser("list", help="every registered document").set_defaults(fn=cmd_documents)
    drm = docs_sub.add_parser("remove", help="unregister documents by hash")
    drm.add_argument("hashes", nargs="+", metavar="HASH", help="sha256:<hex> or <hex>")
    drm.set_defaults(fn=cmd_documents)
    _add_verbosity(parser)
    return parser


# What the embedded PostgreSQL (its initdb output, pg_ctl command lines), Alembic (one line per revision)
# and the job queue's set-up (one line per periodic task) say at INFO: shown with -v only.
_CHATTY = ("pgserver", "alembic", "casbin", "procrastinate.periodic", "procrastinate.blueprints")


def _each_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _each_parser(child)


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``-v`` (INFO of every library) and ``-vv`` (DEBUG), before or after the subcommand."""
    for each in _each_parser(parser):
        each.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0 if each is parser else argparse.SUPPRESS,
            help="say more: -v the embedded PostgreSQL's and Alembic's messages, -vv debug messages",
        )


def configure_cli_logging(verbose: int) -> None:
    """Quiet by default: warnings and errors only (``serve`` adds its own log configuration, where the
    service's INFO lines are wanted), the embedded PostgreSQL and Alembic at WARNING unless ``-v``."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    # (a no-op where logging is set up already: when a test calls main() in its own process)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if verbose == 0 else level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.verbose)
    from infra.embedded import exit_cleanly_on_signals

    exit_cleanly_on_signals()  # SIGTERM ends every command cleanly: an embedded server it started is stopped
    try:
        settings = Settings()
        from infra import crypto

        crypto.configure(crypto.Keyring.from_settings(settings))
    except Exception as exc:
        print(f"tierwise: bad configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.fn(args, settings))
    except Exception as exc:  # the CLI reports, it does not dump internals
        from domain.errors import DomainError

        if isinstance(exc, DomainError):
            print(f"tierwise: {exc.message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
