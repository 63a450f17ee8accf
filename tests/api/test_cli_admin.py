"""The administration CLI (issue 18): every subcommand of ``roles``, ``grants`` and ``tokens`` explains itself
and its arguments; ``grants grant`` offers ``read_if_consented``; ``tokens create`` takes an expiry;
``token issue --ttl`` refuses a lifetime of zero or less; and each change is audited with the person who ran
it (``--actor``, or the OS user) as ``cli:<name>``. Refused input writes nothing."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
from collections.abc import Iterator

import jwt
import pytest

from api.edge import cli
from tests.api.security_helpers import sql
from tests.conftest import Api


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    children = _subcommands(parser)
    if not children:
        yield path, parser
    for name, child in children.items():
        yield from _leaves(child, f"{path} {name}")


def test_every_admin_subcommand_and_argument_explains_itself() -> None:
    top = _subcommands(cli.build_parser())
    checked = 0
    for group in ("roles", "grants", "tokens", "token"):
        assert top[group].description, group
        listed = {a.dest: a.help for a in _subcommands_action(top[group])._choices_actions}
        for path, leaf in _leaves(top[group], group):
            name = path.split()[-1]
            assert listed.get(name), f"`tierwise {path}` has no summary in `tierwise {group} --help`"
            assert leaf.description, f"`tierwise {path} --help` has no description"
            for action in leaf._actions:
                if isinstance(action, argparse._HelpAction):
                    continue
                assert action.help, f"`tierwise {path}`: {action.dest} has no help text"
                checked += 1
    assert checked > 30


def _subcommands_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse refuses bad arguments with status 2
        return int(exc.code or 0)


@pytest.fixture
def on_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", api.url)
    return api


async def test_grants_grant_offers_read_if_consented_and_audits_the_actor(
    on_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api = on_api
    carol = await api.user("carol", "analyst")
    argv = ["grants", "grant", "analyst", "Customer.email", "read_if_consented", "--actor", "dana"]
    assert await asyncio.to_thread(_run, argv) == 0
    assert "allow read_if_consented on Customer.email for analyst" in capsys.readouterr().out
    rules = await sql(api.url, "SELECT v0, v1, v2, v3 FROM casbin_rules WHERE ptype = 'p' AND v1 = 'Customer.email'")
    assert ("role:analyst", "Customer.email", "read_if_consented", "allow") in [tuple(r) for r in rules]
    audit = await sql(api.url, "SELECT actor, action FROM audit_log WHERE action = 'grant'")
    assert [r["actor"] for r in audit] == ["cli:dana"], audit

    # the running service applies it: the analyst now sees the e-mail where the customer consented
    query = '{ viewer { fieldAccess(type: "Customer") { field access } } }'
    for _ in range(50):
        access = {f["field"]: f["access"] for f in (await api.gql(carol, query))["data"]["viewer"]["fieldAccess"]}
        if access["Customer.email"] == "CONSENTED":
            break
        await asyncio.sleep(0.1)
    assert access["Customer.email"] == "CONSENTED"

    # without --actor: the OS user
    assert await asyncio.to_thread(_run, ["roles", "assign", "erin", "analyst"]) == 0
    latest = await sql(api.url, "SELECT actor FROM audit_log ORDER BY id DESC LIMIT 1")
    assert latest[0]["actor"] == f"cli:{getpass.getuser()}"

    # a bad action or actor is refused by the parser: nothing written
    before = await sql(api.url, "SELECT count(*) AS n FROM audit_log")
    assert await asyncio.to_thread(_run, ["grants", "grant", "analyst", "Customer.email", "peek"]) == 2
    assert await asyncio.to_thread(_run, ["roles", "assign", "erin", "admin", "--actor", "a b"]) == 2
    assert await sql(api.url, "SELECT count(*) AS n FROM audit_log") == before


async def test_tokens_create_takes_an_expiry(on_api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api = on_api
    before = dt.datetime.now(dt.UTC)
    argv = ["tokens", "create", "--partner", "Northwind Shop", "--name", "sync", "--expires-in", "2d"]
    assert await asyncio.to_thread(_run, [*argv, "--actor", "ops"]) == 0
    out = capsys.readouterr().out
    assert ", valid until " in out
    assert out.strip().splitlines()[-1].startswith("tw_pat_"), out
    at = dt.datetime(2031, 6, 30, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    argv = ["tokens", "create", "--partner", "Northwind Shop", "--name", "until", "--expires-at", at.isoformat()]
    assert await asyncio.to_thread(_run, argv) == 0
    rows = {r["name"]: r for r in await sql(api.url, "SELECT name, expires_at, created_by FROM api_tokens")}
    in_two_days = rows["sync"]["expires_at"] - before
    assert dt.timedelta(days=2) <= in_two_days < dt.timedelta(days=2, minutes=1)
    assert rows["sync"]["created_by"] == "cli:ops"
    assert rows["until"]["expires_at"] == at
    capsys.readouterr()
    assert await asyncio.to_thread(_run, ["tokens", "list"]) == 0
    assert "expires 2031-06-30 16:00 UTC" in capsys.readouterr().out

    # refused, nothing written: a past instant, a zero or malformed duration, both at once
    for bad in (
        ["--expires-at", "2020-01-01"],
        ["--expires-in", "0d"],
        ["--expires-in", "-3h"],
        ["--expires-in", "soon"],
        ["--expires-in", "1d", "--expires-at", "2031-01-01"],
    ):
        assert await asyncio.to_thread(_run, ["tokens", "create", "--partner", "P", "--name", "x", *bad]) == 2, bad
    assert len(await sql(api.url, "SELECT id FROM api_tokens")) == 2


@pytest.mark.parametrize("ttl", ["0", "-5", "ten"])
def test_token_issue_refuses_a_lifetime_of_zero_or_less(ttl: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["token", "issue", "--sub", "alice", "--ttl", ttl]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--ttl" in captured.err


def test_token_issue_with_a_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["token", "issue", "--sub", "alice", "--ttl", "90"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 90
    assert claims["sub"] == "alice"
