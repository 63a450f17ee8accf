"""Trusted documents (docs/sec-edge.md): GraphQL documents registered ahead of time, by the SHA-256
(hex) of their exact text, from ``.graphql`` files or a build's persisted-documents manifest.

Clients send a registered document by hash — ``extensions.persistedQuery.sha256Hash`` (Apollo,
Relay, urql) or ``documentId: "sha256:<hex>"`` (the GraphQL-over-HTTP persisted-documents draft) —
or send its full text. With ``TIERWISE_DOCUMENTS_MODE=trusted`` nothing else runs: any other
document is refused with one code and message and never parsed (partner tokens may be allowed
arbitrary documents). Each instance keeps the registered set in memory (``TrustedDocuments``) and
reloads it when its version moves: ``LISTEN tierwise_documents``, with a periodic version check
behind it, as the policy does (both through infra/listener.py). No request asks the database about
documents.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, specified_rules, validate
from sqlalchemy.ext.asyncio import AsyncEngine

from api.edge.limits import Limits, validation_rules
from infra.listener import VersionListener
from infra.repos import authz as authz_repo
from infra.repos import documents as repo
from infra.repos.base import Executor

log = logging.getLogger("tierwise.documents")

_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def document_hash(document: str) -> str:
    """The SHA-256 (lower-case hex) of the document's exact text, as clients compute it."""
    return hashlib.sha256(document.encode()).hexdigest()


def parse_hash(value: object) -> str | None:
    """A document id as clients send it (``sha256:<hex>`` or bare hex) → the hex hash, or None."""
    if not isinstance(value, str):
        return None
    hex_part = value.removeprefix("sha256:")
    return hex_part.lower() if _HEX.match(hex_part) else None


class DocumentRejected(Exception):
    """A document that may not be registered; the message says which and why."""


@dataclass(frozen=True)
class Registration:
    hash: str
    document: str
    operation_names: tuple[str, ...]
    source: str


def check_document(schema: GraphQLSchema, document: str, source: str, limits: Limits) -> Registration:
    """Parse and validate one document against the schema and the operation limits (depth,
    aliases, directives, tokens; introspection only where the limits allow it)."""
    try:
        node = parse(document, max_tokens=limits.max_tokens)
    except GraphQLError as exc:
        raise DocumentRejected(f"{source}: {exc.message}") from None
    errors = validate(schema, node, [*specified_rules, *validation_rules(limits)])
    if errors:
        raise DocumentRejected(f"{source}: " + "; ".join(e.message for e in errors[:5]))
    operations = [d for d in node.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise DocumentRejected(f"{source}: no operation (a document of fragments alone cannot be run)")
    names = tuple(op.name.value if op.name else "" for op in operations)
    return Registration(document_hash(document), document, names, source)


def read_sources(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(source, document) pairs from ``.graphql`` files (one document each, as the client sends it)
    and ``.json`` manifests ``{"<sha256 hex>": "<document>", …}`` (graphql-codegen's client preset
    writes one with ``persistedDocuments: true``); a manifest's keys must be the documents' hashes."""
    out: list[tuple[str, str]] = []
    for path in paths:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            content = raw.decode()
        except UnicodeDecodeError:
            raise DocumentRejected(f"{path}: not valid UTF-8") from None
        if not path.endswith(".json"):
            out.append((path, content))
            continue
        try:
            manifest = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise DocumentRejected(f"{path}: not JSON ({exc})") from None
        if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
            raise DocumentRejected(f"{path}: a manifest is a JSON object of hash → document text")
        for key, document in manifest.items():
            if parse_hash(key) != document_hash(document):
                raise DocumentRejected(f"{path}: {key} is not the SHA-256 of its document")
            out.append((f"{path}#{key[:12]}", document))
    return out


async def register(db: Executor, registrations: list[Registration], *, actor: str) -> list[str]:
    """Store the documents (audited); returns the hashes that were not registered before."""
    rows = {
        r.hash: {
            "hash": r.hash,
            "document": r.document,
            "operation_names": list(r.operation_names),
            "source": r.source,
            "registered_by": actor,
        }
        for r in registrations
    }
    added = await repo.register(db, list(rows.values()))
    if added:
        await authz_repo.write_audit(
            db, actor=actor, action="documents.register", target_type="trusted_document", target_ids=added
        )
    return added


async def remove(db: Executor, hashes: list[str], *, actor: str) -> list[str]:
    removed = await repo.remove(db, hashes)
    if removed:
        await authz_repo.write_audit(
            db, actor=actor, action="documents.remove", target_type="trusted_document", target_ids=removed
        )
    return removed


class TrustedDocuments:
    """This instance's copy of the registered documents, by hash."""

    def __init__(self, engine: AsyncEngine, *, poll_interval_s: float = 5.0) -> None:
        self._engine = engine
        self._documents: dict[str, str] = {}
        self.version = 0
        self._lock = asyncio.Lock()
        self._listener = VersionListener(
            engine,
            repo.DOCUMENTS_CHANNEL,
            self._reload_if_changed,
            is_current=self._is_current,
            poll_interval_s=poll_interval_s,
            name="documents",
        )

    def get(self, hash_hex: str) -> str | None:
        return self._documents.get(hash_hex)

    def is_registered(self, document: str) -> bool:
        return document_hash(document) in self._documents

    def __len__(self) -> int:
        return len(self._documents)

    async def reload(self, *, if_changed: bool = False) -> None:
        async with self._lock, self._engine.connect() as conn:
            if if_changed and await repo.version(conn) == self.version:
                return
            version, documents = await repo.load(conn)
        self._documents, self.version = documents, version
        log.info("trusted documents version %s loaded (%s documents)", version, len(documents))

    async def start(self) -> None:
        await self.reload()
        await self._listener.start()

    def _is_current(self, payload: str) -> bool:
        try:
            return int(payload) == self.version
        except ValueError:
            return False

    async def _reload_if_changed(self) -> None:
        await self.reload(if_changed=True)

    async def stop(self) -> None:
        await self._listener.stop()
