"""Casbin, built once per policy version, and the per-role-set decisions drawn from it.

Casbin is asked once per (role set, scopes, field, action) and policy version,
never per row or per request: ``decisions_for`` caches a ``Decisions`` table
covering every guarded field of the catalogue.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from threading import Lock
from typing import Any

import casbin

from authz.catalogue import CATALOGUE, Sensitivity
from authz.confinement import UNSCOPED_OPERATIONS
from authz.principal import Principal

MODEL_PATH = Path(__file__).with_name("model.conf")
ROLE_PREFIX = "role:"


class Level(StrEnum):
    FULL = "FULL"
    CONSENTED = "CONSENTED"  # in full, but only for customers who consented on the field's channel
    MASKED = "MASKED"
    DENIED = "DENIED"


READS = ("read", "read_masked", "read_if_consented")  # the actions a ``read:`` token scope covers


@dataclass(frozen=True)
class Rule:
    ptype: str
    values: tuple[str, ...]


def _scope_allows(scopes: Sequence[str] | None, obj: str, action: str) -> bool:
    """Token scopes narrow a role: ``read:Customer.*`` covers every read of Customer fields the role has — in
    full, masked, or in full where the customer consented (``read_if_consented``, less than a full read)."""
    if scopes is None:
        return True
    verb = "read" if action in READS else action
    for scope in scopes:
        s_verb, _, pattern = scope.partition(":")
        if s_verb in (verb, "*") and fnmatch.fnmatchcase(obj, pattern or "*"):
            return True
    return False


class Decisions:
    """FULL / MASKED / DENIED for every catalogue field, and write rights, for one role set. ``confined``:
    for a partner principal, which is refused the operations without a partner scope whatever its roles
    grant (``authz.confinement.UNSCOPED_OPERATIONS``). ``read_only``: for a staff member viewing as a role
    (``X-Tierwise-View-As``), who sees what the role reads and may change nothing through it."""

    def __init__(
        self,
        store: PolicyStore,
        roles: tuple[str, ...],
        scopes: tuple[str, ...] | None,
        *,
        confined: bool = False,
        read_only: bool = False,
    ) -> None:
        self._store = store
        self.roles = roles
        self.scopes = scopes
        self.confined = confined
        self.read_only = read_only
        self.policy_version = store.version
        self._subject = "roleset"
        self._enforcer = store.enforcer_for(roles, self._subject)
        self.levels: dict[str, Level] = {key: self._decide(key) for key in CATALOGUE}
        self._writes: dict[str, bool] = {}
        # Per-role-set values other layers derive from these decisions (e.g. presenters), built once.
        self.memo: dict[str, Any] = {}

    def _allowed(self, obj: str, action: str) -> bool:
        if self.confined and obj in UNSCOPED_OPERATIONS:
            return False
        return _scope_allows(self.scopes, obj, action) and bool(self._enforcer.enforce(self._subject, obj, action))

    def _decide(self, key: str) -> Level:
        spec = CATALOGUE[key]
        if spec.sensitivity is Sensitivity.PUBLIC:
            return Level.FULL
        if self._allowed(key, "read"):
            return Level.FULL
        if spec.consent and self._allowed(key, "read_if_consented"):
            return Level.CONSENTED
        if spec.sensitivity is Sensitivity.SENSITIVE and spec.mask and self._allowed(key, "read_masked"):
            return Level.MASKED
        return Level.DENIED

    def read(self, key: str) -> Level:
        return self.levels.get(key, Level.DENIED)

    def can_write(self, key: str) -> bool:
        if self.read_only:
            return False
        allowed = self._writes.get(key)
        if allowed is None:
            allowed = self._writes[key] = self._allowed(key, "write")
        return allowed


_MAX_SUBJECTS = 100_000  # roles_of remembered per snapshot; past it the memory starts over


class PolicyStore:
    """An immutable snapshot of the policy at one version, with its Casbin enforcer."""

    def __init__(self, version: int, rules: Iterable[Rule]) -> None:
        self.version = version
        self.rules = tuple(rules)
        self._enforcer = casbin.Enforcer(str(MODEL_PATH))
        self._lock = Lock()
        policies = [list(r.values[:4]) for r in self.rules if r.ptype == "p"]
        groupings = [list(r.values[:2]) for r in self.rules if r.ptype == "g"]
        if policies:
            self._enforcer.add_policies(policies)
        if groupings:
            self._enforcer.add_grouping_policies(groupings)
        self._role_sets: set[str] = set()
        self._roles: dict[str, tuple[str, ...]] = {}  # roles_of, per subject (this snapshot never changes)
        self._cache: OrderedDict[tuple[tuple[str, ...], tuple[str, ...] | None, bool, bool], Decisions] = OrderedDict()

    def enforce(self, subject: str, obj: str, action: str) -> bool:
        with self._lock:
            return bool(self._enforcer.enforce(subject, obj, action))

    def role_set_subject(self, roles: tuple[str, ...]) -> str:
        """A synthetic subject that holds exactly these roles, so Casbin applies inheritance and deny-overrides."""
        subject = "roleset:" + ",".join(roles)
        with self._lock:
            if subject not in self._role_sets:
                for role in roles:
                    self._enforcer.add_role_for_user(subject, ROLE_PREFIX + role)
                self._role_sets.add(subject)
        return subject

    def enforcer_for(self, roles: tuple[str, ...], subject: str) -> casbin.Enforcer:
        """A small enforcer holding only the rules of these roles and the roles they inherit: the same
        decisions as the full policy, at a fraction of the matching cost."""
        with self._lock:
            closure = {ROLE_PREFIX + r for r in roles}
            for role in list(closure):
                closure.update(self._enforcer.get_implicit_roles_for_user(role))
        enforcer = casbin.Enforcer(str(MODEL_PATH))
        policies = [list(r.values[:4]) for r in self.rules if r.ptype == "p" and r.values[0] in closure]
        groupings = [[subject, ROLE_PREFIX + r] for r in roles] + [
            list(r.values[:2]) for r in self.rules if r.ptype == "g" and r.values[0] in closure
        ]
        if policies:
            enforcer.add_policies(policies)
        if groupings:
            enforcer.add_grouping_policies(groupings)
        return enforcer

    def roles_of(self, subject: str) -> tuple[str, ...]:
        """Direct roles assigned to ``user:x`` / ``token:x``, sorted, without the ``role:`` prefix
        (asked of Casbin once per subject and snapshot: a policy change makes a new snapshot)."""
        found = self._roles.get(subject)
        if found is not None:
            return found
        with self._lock:
            roles = self._enforcer.get_roles_for_user(subject)
        found = tuple(sorted(r.removeprefix(ROLE_PREFIX) for r in roles if r.startswith(ROLE_PREFIX)))
        if len(self._roles) >= _MAX_SUBJECTS:
            self._roles.clear()
        self._roles[subject] = found
        return found

    def decisions_for(
        self,
        roles: tuple[str, ...],
        scopes: tuple[str, ...] | None,
        *,
        confined: bool = False,
        read_only: bool = False,
    ) -> Decisions:
        key = (tuple(sorted(roles)), tuple(sorted(scopes)) if scopes is not None else None, confined, read_only)
        found = self._cache.get(key)
        if found is None:
            found = Decisions(self, key[0], key[1], confined=confined, read_only=read_only)
            self._cache[key] = found
            if len(self._cache) > 1024:
                self._cache.popitem(last=False)
        return found

    def decisions_of(self, principal: Principal) -> Decisions:
        """The decisions of a caller: a partner principal is confined to its partner (``authz.confinement``);
        a staff member viewing as a role reads as the role and writes nothing."""
        return self.decisions_for(
            principal.roles, principal.scopes, confined=principal.is_partner, read_only=principal.view_as is not None
        )

    def explain(
        self, roles: tuple[str, ...], scopes: tuple[str, ...] | None, obj: str, action: str
    ) -> tuple[bool, list[str], str]:
        """The decision, the policy line(s) that decided it, and why in words."""
        subject = self.role_set_subject(tuple(sorted(roles)))
        if not _scope_allows(scopes, obj, action):
            return False, [], f"no token scope covers {action} on {obj}"
        with self._lock:
            allowed, rules = self._enforcer.enforce_ex(subject, obj, action)
        if rules and isinstance(rules[0], str):  # pycasbin gives the one deciding rule as a flat list
            rules = [rules]
        lines = [", ".join(r) for r in rules]
        if allowed:
            why = f"allowed by {lines[0]}" if lines else "allowed"
        elif lines:
            why = f"denied by {lines[0]}"
        else:
            why = f"no rule grants {action} on {obj} to roles {', '.join(roles) or '(none)'}: denied by default"
        return bool(allowed), lines, why
