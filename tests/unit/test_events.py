"""The rules of webhook targets (scheme, credentials, addresses: SSRF) and the retry schedule."""

from __future__ import annotations

import pytest

from domain.errors import ValidationFailed
from domain.events import EVENT_TYPES, address_refused, event_types, new_secret, parse_target, retry_delay_s


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "shared address space"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refused = address_refused(address)
    assert refused is not None
    assert reason in refused


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refused(address) is None


def test_targets() -> None:
    t = parse_target("https://Hooks.Example.com:8443/in?x=1", https_only=True)
    assert (t.scheme, t.host, t.port) == ("https", "hooks.example.com", 8443)
    assert parse_target("http://example.com/x", https_only=False).port == 80
    for url in ("http://example.com/x", "ftp://example.com", "https://u:p@example.com", "https://x.com/#f", "nope"):
        with pytest.raises(ValidationFailed):
            parse_target(url, https_only=True)


def test_event_types_are_checked_and_ordered() -> None:
    assert event_types(["customer.erased", "tier.changed", "tier.changed"]) == ["tier.changed", "customer.erased"]
    with pytest.raises(ValidationFailed):
        event_types([])
    with pytest.raises(ValidationFailed):
        event_types(["benefit.budget_exceeded"])  # not yet: benefits don't exist
    assert len(EVENT_TYPES) == 6


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [retry_delay_s(n, base_s=30, max_s=300) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_secrets_are_standard_webhooks_secrets() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert secret != new_secret()
