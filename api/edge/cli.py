"""The ``tierwise`` command: serve, migrate, seed, retier, token issue, roles, grants, tokens, teams, keys, schema,
documents, import."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from api.usecases.caller import Caller
from authz.admin import ACTIONS
from infra.settings import Settings


def _url(settings: Settings) -> str:
    from infra.embedded import resolve_database_url

    return resolve_database_url(settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.edge.app import create_app
    from api.edge.observability import configure_logging

    configure_logging(settings)
    if getattr(args, "verbose", 0) >= 2:  # -vv: debug messages, whatever TIERWISE_LOG_LEVEL says
        logging.getLogger().setLevel(logging.DEBUG)
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


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """A dedicated job worker (``tierwise serve`` also runs one unless TIERWISE_RUN_WORKER=false); with
    ``--once``, one pass over the jobs due now, then exit (e.g. to send the due webhook deliveries where no
    worker runs)."""
    from infra.db import create_engine
    from infra.jobs import JobDeps, create_job_app, registrars, run_worker

    async def run() -> int:
        url = _url(settings)
        engine = create_engine(url, settings)
        jobs = create_job_app(url, JobDeps(engine=engine, settings=settings), registrars())
        try:
            async with jobs.open_async():
                await run_worker(jobs, settings, queues=args.queue or None, once=args.once)
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
                        engine,
                        actor=caller_of(args).actor,
                        batch_size=args.batch_size,
                        on_progress=show,
                        max_batches=args.max_batches,
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
    """Run one administration use-case in a transaction; it is audited (actor ``cli:<name>``, see
    ``caller_of``) and every running instance picks it up through NOTIFY."""
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

    caller = caller_of(args)

    async def action(conn: Any) -> str:
        if args.roles_cmd == "assign":
            await access.assign_role(conn, caller, args.user, args.role)
            return f"user:{args.user} now has role {args.role}"
        if args.roles_cmd == "unassign":
            await access.unassign_role(conn, caller, args.user, args.role)
            return f"user:{args.user} no longer has role {args.role}"
        if args.roles_cmd == "create":
            await access.create_role(conn, caller, args.name, args.description, args.inherits)
            return f"role {args.name} created"
        if args.roles_cmd == "delete":
            await access.delete_role(conn, caller, args.name)
            return f"role {args.name} deleted"
        roles = await access.list_roles(conn, await access.load_policy(conn))
        return "\n".join(f"{r.name:<16} {r.description}" for r in roles)

    return _admin_command(settings, action)


def cmd_grants(args: argparse.Namespace, settings: Settings) -> int:
    from api.usecases import access

    caller = caller_of(args)

    async def action(conn: Any) -> str:
        if args.grants_cmd == "list":
            policy = await access.load_policy(conn)
            return "\n".join(f"{r.ptype}, " + ", ".join(v for v in r.values if v) for r in policy.rules)
        fn = access.grant if args.grants_cmd == "grant" else access.revoke
        version = await fn(conn, caller, args.role, args.object, args.action, args.effect)
        return f"{args.grants_cmd}: {args.effect} {args.action} on {args.object} for {args.role} (policy v{version})"

    return _admin_command(settings, action)


def _expiry(when: datetime.datetime | None, prefix: str) -> str:
    return f"{prefix}{when.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC" if when else ""


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from api.usecases import access

    caller = caller_of(args)

    async def action(conn: Any) -> str:
        if args.tokens_cmd == "create":
            command = access.CreatePartnerToken(
                partner=args.partner,
                name=args.name,
                scopes=args.scope,
                role=args.role,
                allow_arbitrary_documents=args.allow_arbitrary_documents,
                expires_at=args.expires_at
                or (datetime.datetime.now(datetime.UTC) + args.expires_in if args.expires_in else None),
            )
            created = await access.create_partner_token(conn, caller, command)
            until = _expiry(created.row.get("expires_at"), ", valid until ")
            return f"token {created.row['id']} for {args.partner}{until} (shown once, keep it safe):\n{created.token}"
        if args.tokens_cmd == "revoke":
            await access.revoke_partner_token(conn, caller, args.id)
            return f"token {args.id} revoked"
        if args.tokens_cmd == "arbitrary-documents":
            allow = args.setting == "on"
            await access.set_partner_token_arbitrary_documents(conn, caller, args.id, allow)
            return f"token {args.id} may {'now' if allow else 'no longer'} send documents that are not registered"
        rows = await access.list_partner_tokens(conn, caller)
        return "\n".join(
            f"{r['id']}  {r['name']:<24} role={r['role']} scopes={','.join(r['scopes'])}"
            f"{'  arbitrary-documents' if r['allow_arbitrary_documents'] else ''}"
            f"{_expiry(r.get('expires_at'), '  expires ')}"
            f"{'  REVOKED' if r['revoked_at'] else ''}"
            for r in rows
        )

    return _admin_command(settings, action)


def _team_line(team: Any) -> str:
    members = ", ".join(team.members) or "(no members)"
    retired = _expiry(team.archived_at, "  ARCHIVED ")
    return f"{team.id}  {team.name:<24} {members}{retired}"


def cmd_teams(args: argparse.Namespace, settings: Settings) -> int:
    """Teams of staff (the complaint queues "to a team", "my teams"): the use-cases the GraphQL team
    mutations call (api/usecases/access.py), a team named by its name or its id."""
    from api.usecases import access

    caller = caller_of(args)

    async def action(conn: Any) -> str:
        if args.teams_cmd == "create":
            team = await access.create_team(conn, caller, args.name)
            return f"team {team.name} created: {team.id}"
        if args.teams_cmd == "list":
            teams = await access.list_teams(conn, include_archived=args.include_archived)
            return "\n".join(_team_line(t) for t in teams) or "no teams"
        team_id = await access.team_named(conn, args.team)
        if args.teams_cmd == "rename":
            team = await access.rename_team(conn, caller, team_id, args.name)
            return f"team {args.team} is now {team.name}"
        if args.teams_cmd == "archive":
            archived = await access.archive_team(conn, caller, team_id)
            n = archived.active_complaints
            held = f"{n} active complaint{'' if n == 1 else 's'} keep{'s' if n == 1 else ''} it until reassigned"
            return f"team {archived.team.name} archived: it takes no new complaints; {held}"
        if args.teams_cmd == "add-member":
            team = await access.add_team_member(conn, caller, team_id, args.user)
            return f"{args.user.strip()} is in team {team.name}: {', '.join(team.members)}"
        team = await access.remove_team_member(conn, caller, team_id, args.user)
        return f"{args.user.strip()} is no longer in team {team.name}"

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
            added = set(await register(conn, checked, actor=caller_of(args).actor))
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
            removed = await remove(conn, [h for h in hashes if h], actor=caller_of(args).actor)
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


_DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ACTOR = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def _positive_seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a lifetime must be positive, not {seconds}")
    return seconds


def _duration(value: str) -> datetime.timedelta:
    match = _DURATION.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration such as 90d, 12h, 30m, 3600s or 2w")
    return datetime.timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def _future_instant(value: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    if when <= datetime.datetime.now(datetime.UTC):
        raise argparse.ArgumentTypeError(f"{value} is in the past")
    return when


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid (some containers)
        return f"uid{os.getuid()}"


def _actor_name(value: str) -> str:
    if not _ACTOR.match(value):
        raise argparse.ArgumentTypeError("an actor is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    return value


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--actor",
        type=_actor_name,
        default=None,
        help="who is making this change, for the audit log (default: the OS user); recorded as cli:NAME",
    )


def caller_of(args: argparse.Namespace) -> Caller:
    """The caller of one CLI invocation: the operator's own tool (unconfined by roles), named in audit rows
    as ``cli:<--actor or the OS user>``."""
    return Caller(actor=f"cli:{getattr(args, 'actor', None) or _os_user()}")


def _command(subparsers: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with its one-line help (in the parent's list) and its description (in its own --help)."""
    return subparsers.add_parser(name, help=summary, description=description)  # type: ignore[no-any-return]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema to the code's head").set_defaults(fn=cmd_migrate)
    worker = sub.add_parser("worker", help="run a job worker (scheduled re-tiering, SLA sweeps, webhooks…)")
    worker.add_argument("--once", action="store_true", help="run the jobs due now, then exit")
    worker.add_argument(
        "--queue", action="append", metavar="NAME", help="work this queue only (repeatable; default: all of them)"
    )
    worker.set_defaults(fn=cmd_worker)

    seed = sub.add_parser(
        "seed", help="load realistic, deterministic demo data (development only: needs tierwise[demo])"
    )
    seed.add_argument("--customers", type=int, default=2000)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if there are customers already")
    seed.set_defaults(fn=cmd_seed)

    token = sub.add_parser("token", help="staff tokens", description="Staff tokens (JWTs) for development.")
    token_sub = token.add_subparsers(dest="token_cmd", required=True)
    issue = _command(
        token_sub,
        "issue",
        "print a staff JWT (development)",
        "Print a staff JWT signed with the configured key; it carries only the user id: roles are assigned "
        "inside tierwise (`tierwise roles assign`).",
    )
    issue.add_argument("--sub", required=True, help="the user id (roles are assigned with `tierwise roles`)")
    issue.add_argument(
        "--ttl", type=_positive_seconds, default=None, help="lifetime in seconds (default TIERWISE_JWT_TTL_S)"
    )
    issue.set_defaults(fn=cmd_token_issue)

    roles = sub.add_parser(
        "roles",
        help="roles and who holds them",
        description="Roles and their assignments to users. Every change is audited with --actor and reaches "
        "every running instance within a second.",
    )
    roles_sub = roles.add_subparsers(dest="roles_cmd", required=True)
    for name, verb in (("assign", "give a user a role"), ("unassign", "take a role from a user")):
        p = _command(roles_sub, name, verb, f"{verb[0].upper()}{verb[1:]} (staff users: the `sub` of their JWT).")
        p.add_argument("user", help="the user id, as in the `sub` claim of their token (e.g. alice)")
        p.add_argument("role", help="a role name (`tierwise roles list`)")
        _actor_option(p)
        p.set_defaults(fn=cmd_roles)
    _command(roles_sub, "list", "every role and its description", "List every role with its description.").set_defaults(
        fn=cmd_roles
    )
    create = _command(
        roles_sub,
        "create",
        "make a new role",
        "Make a role; it has no grants until `tierwise grants grant` gives it some (or --inherits).",
    )
    create.add_argument("name", help="the new role's name (lower case, e.g. billing_agent)")
    create.add_argument("--description", default="", help="what the role is for, shown by `roles list`")
    create.add_argument("--inherits", default=None, help="a role whose grants this one inherits")
    _actor_option(create)
    create.set_defaults(fn=cmd_roles)
    delete = _command(roles_sub, "delete", "delete a role", "Delete a role that nobody holds any more.")
    delete.add_argument("name", help="the role to delete")
    _actor_option(delete)
    delete.set_defaults(fn=cmd_roles)

    grants = sub.add_parser(
        "grants",
        help="what each role may read and write, field by field",
        description="The field grants of roles (the Casbin policy). Every change is audited with --actor and "
        "reaches every running instance within a second.",
    )
    grants_sub = grants.add_subparsers(dest="grants_cmd", required=True)
    _command(grants_sub, "list", "every rule of the policy", "Print every rule of the policy.").set_defaults(
        fn=cmd_grants
    )
    for name, what in (("grant", "allow (or, with --effect deny, forbid)"), ("revoke", "remove the rule that allows")):
        g = _command(
            grants_sub,
            name,
            f"{name} an action on a field to a role",
            f"{what[0].upper()}{what[1:]} an action on a field or operation for a role.",
        )
        g.add_argument("role", help="the role (`tierwise roles list`)")
        g.add_argument("object", help="Type.field, Type.* or an operation such as Mutation.openComplaint")
        g.add_argument(
            "action",
            choices=list(ACTIONS),
            help="read: in full; read_masked: masked (contact fields); read_if_consented: in full where the "
            "customer consented to the field's channel (e-mail, SMS, phone), denied elsewhere; write: call a "
            "mutation or set a field",
        )
        g.add_argument("--effect", choices=["allow", "deny"], default="allow", help="allow (default) or deny")
        _actor_option(g)
        g.set_defaults(fn=cmd_grants)

    tokens = sub.add_parser(
        "tokens",
        help="partner API tokens",
        description="Partner API tokens (tw_pat_…): each is confined to its partner's rows. Every change is "
        "audited with --actor.",
    )
    tokens_sub = tokens.add_subparsers(dest="tokens_cmd", required=True)
    tc = _command(
        tokens_sub,
        "create",
        "make a token for a partner (printed once)",
        "Make a partner token and print it once (only its hash is kept). The partner is created if new.",
    )
    tc.add_argument("--partner", required=True, help="the partner's name, e.g. 'Northwind Shop'")
    tc.add_argument("--name", required=True, help="what the token is for, e.g. 'shop sync'")
    tc.add_argument("--role", default="partner", help="the role the token holds (default partner)")
    tc.add_argument("--scope", action="append", help="e.g. read:Customer.* (repeatable; default read:* write:*)")
    expiry = tc.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in",
        type=_duration,
        metavar="DURATION",
        help="valid for this long: 90d, 12h, 30m, 3600s or 2w (default: until revoked)",
    )
    expiry.add_argument(
        "--expires-at",
        type=_future_instant,
        metavar="WHEN",
        help="valid until this ISO 8601 time, e.g. 2027-06-30 or 2027-06-30T18:00+02:00 (UTC if no offset)",
    )
    tc.add_argument(
        "--allow-arbitrary-documents",
        action="store_true",
        help="in trusted-documents mode, let this token send documents that are not registered",
    )
    _actor_option(tc)
    tc.set_defaults(fn=cmd_tokens)
    ta = _command(
        tokens_sub,
        "arbitrary-documents",
        "allow (on) or refuse (off) unregistered documents",
        "In trusted-documents mode, let a token send documents that are not registered (on), or not (off).",
    )
    ta.add_argument("id", help="the token id (`tierwise tokens list`)")
    ta.add_argument("setting", choices=["on", "off"], help="on: allowed; off: registered documents only")
    _actor_option(ta)
    ta.set_defaults(fn=cmd_tokens)
    tr = _command(tokens_sub, "revoke", "revoke a token", "Revoke a token: it is refused from the next request on.")
    tr.add_argument("id", help="the token id (`tierwise tokens list`)")
    _actor_option(tr)
    tr.set_defaults(fn=cmd_tokens)
    _command(
        tokens_sub, "list", "every partner token", "List every partner token: id, name, role, scopes, expiry, state."
    ).set_defaults(fn=cmd_tokens)

    teams = sub.add_parser(
        "teams",
        help="teams of staff for the complaint queues",
        description="Teams of staff: complaints are handed to a team (assignComplaint team) and its members "
        'find them in their "my teams" queue. A team is named by its name or its id (`tierwise teams list`). '
        "Every change is audited with --actor.",
    )
    teams_sub = teams.add_subparsers(dest="teams_cmd", required=True)
    tl = _command(
        teams_sub,
        "list",
        "every team that takes complaints",
        "List the teams that take complaints: id, name, members (archived ones with --include-archived).",
    )
    tl.add_argument("--include-archived", action="store_true", help="the retired (archived) teams too")
    tl.set_defaults(fn=cmd_teams)
    tcr = _command(teams_sub, "create", "make a new, empty team", "Make a team; its name is unique.")
    tcr.add_argument("name", help="the team's name, e.g. Billing")
    _actor_option(tcr)
    tcr.set_defaults(fn=cmd_teams)
    trn = _command(
        teams_sub,
        "rename",
        "give a team a new name",
        "Rename a team (archived or not); the new name must be free. Past hand-overs keep the old name in "
        "their history.",
    )
    trn.add_argument("team", help="the team's name or id")
    trn.add_argument("name", help="its new name")
    _actor_option(trn)
    trn.set_defaults(fn=cmd_teams)
    tar = _command(
        teams_sub,
        "archive",
        "retire a team: no new complaints go to it",
        "Retire a team: complaints can no longer be handed to it, and it leaves the list. The complaints it "
        "holds keep it until someone reassigns them; the answer says how many there are.",
    )
    tar.add_argument("team", help="the team's name or id")
    _actor_option(tar)
    tar.set_defaults(fn=cmd_teams)
    for name, verb, desc in (
        ("add-member", "put a staff user in a team", "Put a staff user in a team (the `sub` of their JWT)."),
        (
            "remove-member",
            "take a user out of a team",
            "Take a user out of a team; the team's complaints stay the team's.",
        ),
    ):
        tm = _command(teams_sub, name, verb, desc)
        tm.add_argument("team", help="the team's name or id")
        tm.add_argument("user", help="the user id, as in the `sub` claim of their token (e.g. bob)")
        _actor_option(tm)
        tm.set_defaults(fn=cmd_teams)

    retier = sub.add_parser("retier", help="recompute metrics and re-tier every customer (resumes a stopped run)")
    retier.add_argument("--batch-size", type=int, default=50_000, help="customers per transaction")
    retier.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")
    _actor_option(retier)
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
    _actor_option(dr)
    dr.set_defaults(fn=cmd_documents)
    docs_sub.add_parser("list", help="every registered document").set_defaults(fn=cmd_documents)
    drm = docs_sub.add_parser("remove", help="unregister documents by hash")
    drm.add_argument("hashes", nargs="+", metavar="HASH", help="sha256:<hex> or <hex>")
    _actor_option(drm)
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
