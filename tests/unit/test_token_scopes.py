"""Token scopes narrow a role's decisions (authz/policy.py): ``read:<pattern>`` covers every kind of read the
role has on the fields it matches — in full, masked, and in full where the customer consented — and nothing
outside the pattern; ``write:<pattern>`` covers writes only. A scope never widens what the role has."""

from __future__ import annotations

from authz.policy import Level, PolicyStore, Rule


def _store() -> PolicyStore:
    rules = [
        ("role:reader", "Customer.email", "read_if_consented"),
        ("role:reader", "Customer.phone", "read_masked"),
        ("role:reader", "Customer.name", "read"),
        ("role:reader", "Purchase.amount", "read"),
        ("role:reader", "Mutation.recordPurchases", "write"),
    ]
    return PolicyStore(1, [Rule("p", (sub, obj, act, "allow")) for sub, obj, act in rules])


def _levels(scopes: tuple[str, ...] | None) -> dict[str, Level]:
    decisions = _store().decisions_for(("reader",), scopes)
    return {k: decisions.read(k) for k in ("Customer.email", "Customer.phone", "Customer.name", "Purchase.amount")}


def test_no_scopes_leave_the_role_as_it_is() -> None:
    assert _levels(None) == {
        "Customer.email": Level.CONSENTED,
        "Customer.phone": Level.MASKED,
        "Customer.name": Level.FULL,
        "Purchase.amount": Level.FULL,
    }


def test_a_read_scope_covers_every_kind_of_read_of_what_it_matches() -> None:
    assert _levels(("read:Customer.*",)) == {
        "Customer.email": Level.CONSENTED,  # a consented read is a read: the scope covers it
        "Customer.phone": Level.MASKED,
        "Customer.name": Level.FULL,
        "Purchase.amount": Level.DENIED,  # not matched
    }
    assert _levels(("read:*",)) == _levels(None)
    assert _levels(("*:Customer.email",))["Customer.email"] is Level.CONSENTED


def test_a_scope_never_widens_the_role_and_write_scopes_read_nothing() -> None:
    assert _levels(("read:*", "write:*"))["Customer.email"] is Level.CONSENTED  # not FULL
    assert set(_levels(("write:*",)).values()) == {Level.DENIED}
    decisions = _store().decisions_for(("reader",), ("read:*",))
    assert not decisions.can_write("Mutation.recordPurchases")
    assert _store().decisions_for(("reader",), ("write:Mutation.*",)).can_write("Mutation.recordPurchases")
