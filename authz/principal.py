"""Who is calling: a staff user (JWT) or a partner token. Roles come from tierwise, not the token."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID


class PrincipalKind(StrEnum):
    USER = "user"
    TOKEN = "token"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: str
    roles: tuple[str, ...] = ()  # role names, e.g. ("support_agent",)
    partner_id: UUID | None = None
    scopes: tuple[str, ...] | None = None  # tokens only: e.g. ("read:Customer.*", "write:Mutation.openComplaint")
    token_name: str | None = field(default=None, compare=False)
    # tokens only: in trusted-documents mode, may still send documents that are not registered
    arbitrary_documents: bool = field(default=False, compare=False)
    # staff only: the role this request views as (X-Tierwise-View-As, api/edge/auth.py): ``roles`` is then
    # that role alone, and the request may read what the role reads and write nothing
    view_as: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @property
    def is_partner(self) -> bool:
        return self.partner_id is not None
