"""The ``tierwise`` command: serve, migrate, seed, token issue, roles, schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from infra.settings import Settings


def _url(settings: Settings) -> str:
    from infra.embedded import resolve_database_url

    return resolve_database_url(settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
        proxy_headers=True,
    )
    return 0


def cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from infra.migrate import head_revision, upgrade

    upgrade(_url(settings))
    print(f"database at {head_revision()}")
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from infra.db import create_engine
    from infra.seed import is_empty, seed

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            if args.if_empty and not await is_empty(engine):
                print("database has customers already: not seeding")
                return 0
            report = await seed(engine, args.customers, seed=args.seed, progress=sys.stderr.isatty())
            print(report)
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_token_issue(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import issue_staff_token

    print(issue_staff_token(settings, args.sub, ttl_s=args.ttl))
    return 0


def cmd_schema(_args: argparse.Namespace, _settings: Settings) -> int:
    from api.schema import build_schema

    print(str(build_schema()))
    return 0


def cmd_roles(args: argparse.Namespace, settings: Settings) -> int:
    from authz import admin
    from infra.db import create_engine

    async def run() -> int:
        engine = create_engine(_url(settings), settings)
        try:
            async with engine.connect() as conn:
                if args.roles_cmd == "assign":
                    await admin.assign_role(conn, args.user, args.role, actor="cli")
                    print(f"user:{args.user} now has role {args.role}")
                elif args.roles_cmd == "unassign":
                    await admin.unassign_role(conn, args.user, args.role, actor="cli")
                    print(f"user:{args.user} no longer has role {args.role}")
                else:
                    for role in await admin.list_roles(conn):
                        print(f"{role['name']:<16} {role['description']}")
                await conn.commit()
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database schema to the code's head").set_defaults(fn=cmd_migrate)

    seed = sub.add_parser("seed", help="load realistic, deterministic demo data")
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

    sub.add_parser("schema", help="print the GraphQL schema (SDL)").set_defaults(fn=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("casbin").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
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
