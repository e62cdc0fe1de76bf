"""Who is calling, and what it may do: a user signed in with a JWT, or a tenant API key with a scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from .errors import Forbidden

Role = Literal["admin", "member"]
Scope = Literal["query", "write", "admin"]
Kind = Literal["user", "api_key"]
Capability = Literal[
    "ask",  # query, sync or streamed
    "read_documents",  # list and get documents
    "write_documents",  # create (upload) documents
    "manage_documents",  # delete and re-ingest documents
    "manage_users",  # create, list and delete users
    "manage_keys",  # create, list and revoke API keys
    "read_usage",  # the organisation's usage counters and quotas
]

ALL_CAPABILITIES: frozenset[Capability] = frozenset(
    (
        "ask",
        "read_documents",
        "write_documents",
        "manage_documents",
        "manage_users",
        "manage_keys",
        "read_usage",
    )
)
# What each role of a person may do (see docs/decisions.md, "What a member may do").
ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "admin": ALL_CAPABILITIES,
    "member": frozenset(("ask", "read_documents", "write_documents", "read_usage")),
}
# What each scope of an API key may do: `query` keys only ask; `write` keys also feed and curate the
# documents; only `admin` keys (like admin users) manage users and keys. Every caller may read its
# organisation's usage and quotas (a program asking questions needs to know how many it has left).
SCOPE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "query": frozenset(("ask", "read_usage")),
    "write": frozenset(("ask", "read_documents", "write_documents", "manage_documents", "read_usage")),
    "admin": ALL_CAPABILITIES,
}


@dataclass(frozen=True)
class Principal:
    """The verified caller: a user (``user_id`` and ``role``) or an API key (``key_id`` and ``scope``;
    ``user_id`` and ``role`` are None, since a key belongs to the organisation, not to a person)."""

    user_id: uuid.UUID | None
    org_id: uuid.UUID
    role: Role | None
    kind: Kind = "user"
    key_id: uuid.UUID | None = None
    scope: Scope | None = None

    @classmethod
    def for_api_key(cls, key_id: uuid.UUID, org_id: uuid.UUID, scope: Scope) -> Principal:
        """The principal of a verified API key."""
        return cls(user_id=None, org_id=org_id, role=None, kind="api_key", key_id=key_id, scope=scope)

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.kind == "api_key":
            return SCOPE_CAPABILITIES.get(self.scope or "", frozenset())
        return ROLE_CAPABILITIES.get(self.role or "", frozenset())

    @property
    def is_admin(self) -> bool:
        """An admin user, or an API key of the admin scope."""
        return self.capabilities == ALL_CAPABILITIES

    def can(self, capability: Capability) -> bool:
        """Whether the caller may do ``capability``."""
        return capability in self.capabilities

    def require(self, capability: Capability) -> None:
        """Raise Forbidden unless the caller may do ``capability``."""
        if not self.can(capability):
            raise self._refusal()

    def require_admin(self) -> None:
        """Raise Forbidden unless the caller is an admin user or an admin API key (may do everything)."""
        if not self.is_admin:
            raise self._refusal()

    def require_user(self) -> uuid.UUID:
        """The caller's user id; Forbidden for an API key (what belongs to a person, such as a
        conversation, has no owner when a key calls)."""
        if self.user_id is None:
            raise Forbidden("conversations belong to a signed-in user; an API key cannot hold them")
        return self.user_id

    def _refusal(self) -> Forbidden:
        if self.kind == "api_key":
            return Forbidden(f"an API key of scope '{self.scope}' does not allow this action")
        return Forbidden("this action needs the admin role")

    def log_keys(self) -> dict[str, str]:
        """What every log line of the request carries to attribute it (ids only, never a secret)."""
        keys = {"org_id": str(self.org_id), "auth": self.kind}
        if self.user_id is not None:
            keys["user_id"] = str(self.user_id)
        if self.key_id is not None:
            keys["api_key_id"] = str(self.key_id)
        return keys
