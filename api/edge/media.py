"""The response media type of the GraphQL over HTTP specification: ``application/graphql-response+json``
when the client asks for it, ``application/json`` otherwise (and when it sends no ``Accept``, or ``*/*``).

With ``application/graphql-response+json`` the status code says whether the request was executed: a
document that does not parse or validate, or variables that can't be coerced (errors raised before
execution, which carry no ``path``), are answered with 400 and no ``data`` entry. With
``application/json`` such errors keep status 200, as legacy clients expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_OURS = (GRAPHQL_RESPONSE, JSON)


def _accepted(header: str) -> list[tuple[str, float, int]]:
    """(media type, q, position) of each entry of an Accept header; malformed q values count as 1."""
    out = []
    for position, part in enumerate(header.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 1.0
        if media:
            out.append((media.lower(), q, position))
    return out


def response_media_type(accept: str | None) -> str:
    """The media type to answer with: the one of ours the client prefers (higher q, then first listed);
    ``application/json`` when it names neither (no header, ``*/*``, ``application/*``, or something else)."""
    if not accept:
        return JSON
    ranked = [(q, -position, media) for media, q, position in _accepted(accept) if media in _OURS and q > 0]
    return max(ranked)[2] if ranked else JSON


def is_request_error(data: Any, errors: Sequence[Mapping[str, Any]]) -> bool:
    """Errors raised before execution (parse, validation, variable coercion, an operation refused by a
    limit): no data, and no error at a path."""
    return data is None and bool(errors) and all(not e.get("path") for e in errors)
