"""Events others must hear of, and the rules of the webhooks that carry them: which event types exist,
what a webhook target may be (scheme, address: SSRF), the retry schedule and the run of failures that
disables an endpoint. Pure: no I/O; the addresses checked are the ones infra resolved at delivery time.

An event is written to the outbox (``events``) in the transaction of the change it reports (infra/repos/
events.py), so it exists if and only if the change committed; its payload carries ids and non-sensitive
facts only: a receiver reads details through the API with its own token, under its own access.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from domain.errors import ValidationFailed


class EventType(StrEnum):
    """Every event type. A new one is a member here (and a catalogue entry: authz/catalogue.py
    ``EVENT_REVEALS``); ``benefit.budget_exceeded`` joins when benefits exist."""

    TIER_CHANGED = "tier.changed"
    COMPLAINT_SLA_BREACHED = "complaint.sla_breached"
    COMPLAINT_ESCALATED = "complaint.escalated"
    CHURN_RISK_RAISED = "churn.risk_raised"
    CUSTOMER_MERGED = "customer.merged"
    CUSTOMER_ERASED = "customer.erased"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

DELIVERY_STATUSES = ("pending", "delivered", "failed")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def event_types(values: list[str] | tuple[str, ...]) -> list[str]:
    """The event types asked for, checked, without repeats, in a stable order."""
    if not values:
        raise ValidationFailed("give at least one event type", field="eventTypes")
    unknown = sorted(set(values) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed(
            f"unknown event types {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})", field="eventTypes"
        )
    return [t for t in EVENT_TYPES if t in set(values)]


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: scheme, host, port."""

    url: str
    scheme: str
    host: str
    port: int


def parse_target(url: str, *, https_only: bool) -> Target:
    """A webhook URL: absolute http(s) (https only when ``https_only``: production), no credentials in it,
    no fragment. The host is checked again, as resolved, at every delivery (``address_refused``)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"give a URL of at most {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed("not a valid URL", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed("a webhook URL is http or https", field="url")
    if https_only and scheme != "https":
        raise ValidationFailed("only https webhook URLs are accepted here", field="url")
    if not parts.hostname:
        raise ValidationFailed("the URL has no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("credentials in the URL are not accepted (the signature authenticates)", field="url")
    if parts.fragment:
        raise ValidationFailed("a webhook URL has no fragment", field="url")
    return Target(url, scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80))


def address_refused(address: str) -> str | None:
    """Why a resolved address may not receive webhooks (loopback, private, link-local, …), or None.
    Infra refuses these unless a setting allows them (tests, a private network on purpose)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for reason, refused in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("shared address space", ip in ipaddress.ip_network("100.64.0.0/10")),
        ("private", ip.is_private),
    ):
        if refused:
            return f"{ip} is a {reason} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def retry_delay_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2 base, 4 base… capped."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))
