"""The administration CLI (issue 18): every subcommand of ``roles``, ``grants``, ``tokens`` and ``teams`` explains itself
and its arguments; ``grants grant`` offers ``read_if_consented``; ``tokens create`` takes an expiry;
``token issue --ttl`` refuses a lifetime of zero or less; and each change is audited with the person who ran
it (``--actor``, or the OS user) as ``cli:<name>``; ``teams`` makes, renames and retires the teams the API
serves through the same use-cases. Refused input writes nothing."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
from collections.abc import Iterator

import jwt
import pytest

from api.edge import cli
from api.graphql.core.ids import to_global_id
from tests.api.helpers import create_customer, ok, open_complaint, snapshot
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
    for group in ("roles", "grants", "tokens", "token", "teams"):
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


async def test_teams_from_the_cli(on_api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api = on_api
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(_run, ["teams", *argv])
        captured = capsys.readouterr()
        return code, captured.out.strip(), captured.err.strip()

    code, out, _ = await run("create", "Billing", "--actor", "ops")
    team_id = str((await sql(api.url, "SELECT id FROM teams WHERE name = 'Billing'"))[0]["id"])
    assert (code, out) == (0, f"team Billing created: {team_id}")
    assert (await run("add-member", "Billing", "bob", "--actor", "ops"))[:2] == (0, "bob is in team Billing: bob")
    assert (await run("add-member", team_id, "zoe"))[:2] == (0, "zoe is in team Billing: bob, zoe")
    code, out, _ = await run("list")
    assert (code, out) == (0, f"{team_id}  Billing                  bob, zoe")

    # the API serves what the CLI made: a complaint handed to the team by a support agent
    customer = (await create_customer(api, admin, name="Cli Teamwork"))["id"]
    complaint = await open_complaint(api, admin, customer)
    assign = """mutation($input: AssignComplaintInput!) { assignComplaint(input: $input) {
      complaint { team { name } } userErrors { field code message } } }"""
    handed = await api.gql(
        agent, assign, {"input": {"id": complaint["id"], "expectedVersion": 1, "team": to_global_id("Team", team_id)}}
    )
    assert ok(handed, "assignComplaint")["complaint"]["team"] == {"name": "Billing"}

    assert (await run("rename", "Billing", "Billing & refunds"))[:2] == (0, "team Billing is now Billing & refunds")
    assert (await run("create", "Delivery"))[0] == 0
    # refused, nothing written: a name in use, an unknown team, a user not in the team
    before = await snapshot(api)
    assert await run("rename", "Delivery", "Billing & refunds") == (
        1,
        "",
        "tierwise: team Billing & refunds exists already",
    )
    assert await run("archive", "Nobody") == (1, "", "tierwise: no such team: Nobody")
    assert await run("remove-member", "Delivery", "bob") == (1, "", "tierwise: bob is not in team Delivery")
    assert await snapshot(api) == before

    code, out, _ = await run("archive", team_id, "--actor", "ops")
    assert (code, out) == (
        0,
        "team Billing & refunds archived: it takes no new complaints; 1 active complaint keeps it until reassigned",
    )
    assert (await run("list"))[1].split()[1] == "Delivery"  # the archived team is not offered
    code, out, _ = await run("list", "--include-archived")
    assert "Billing & refunds" in out
    assert " ARCHIVED " in out.splitlines()[0]
    audit = await sql(api.url, "SELECT actor, action FROM audit_log WHERE target_type = 'Team' ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit][:2] == [
        ("cli:ops", "team.create"),
        ("cli:ops", "team.member.add"),
    ]
    assert ("cli:ops", "team.archive") in [(a["actor"], a["action"]) for a in audit]
    assert {a["action"] for a in audit} == {
        "team.create",
        "team.member.add",
        "team.rename",
        "team.archive",
    }
