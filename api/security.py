"""Roles and bearer tokens (SPEC §9).

A token is 256 random bits; only its SHA-256 is stored (``api_tokens`` in DuckDB), which is enough for tokens of
that entropy: a stolen file signs no one in. The settings' admin token (``TOOGREEN_API__ADMIN_TOKEN``) is an admin
everywhere without being stored. Who may call what is declared on each route with :func:`allow`: no token 401,
a role that may never do it 403; scoping to the caller's own objects (404 for another's) is the queries' job,
through :attr:`Principal.scope`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import StoreDep
from sinks import queries
from sinks.duckdb_store import Store
from sinks.queries import EVERYTHING, Scope


class Role(StrEnum):
    admin = "admin"
    developer = "developer"
    datacenter = "datacenter"
    recycler = "recycler"
    gamer = "gamer"
    node = "node"  # a node agent's token, issued when its provider registers the node


PROVIDER_ROLES = (Role.datacenter, Role.recycler, Role.gamer)
PEOPLE = (Role.developer, *PROVIDER_ROLES)  # admin is allowed everywhere anyway
ISSUABLE_ROLES = (Role.admin, *PEOPLE)  # node tokens come with a node's registration


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and the subject it acts for (a developer, a provider, a node id)."""

    role: Role
    subject: str

    @property
    def scope(self) -> Scope:
        if self.role is Role.admin:
            return EVERYTHING
        if self.role is Role.developer:
            return Scope(submitter=self.subject)
        if self.role is Role.node:
            return Scope(node_id=self.subject)
        return Scope(provider=self.subject)


ADMIN = Principal(Role.admin, "admin")  # the settings' admin token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(store: Store, role: Role, subject: str, created_by: str) -> str:
    """A new token for ``role``/``subject``; stored hashed, returned once in clear."""
    token = f"tg_{secrets.token_urlsafe(32)}"
    queries.insert_token(store, hash_token(token), role.value, subject, int(time.time() * 1000), created_by)
    return token


_bearer = HTTPBearer(auto_error=False, description="A token issued by an admin (or the settings' admin token)")


def current_principal(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from its bearer token: 401 when there is none or it is unknown."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send Authorization: Bearer <token>", headers=challenge)
    token = credentials.credentials
    principal = known_principal(request.app.state, token)
    if principal is None:
        digest = hash_token(token)
        row = queries.token_by_hash(store, digest)
        if row is None:
            raise HTTPException(401, "unknown token", headers=challenge)
        principal = request.app.state.principals[digest] = Principal(Role(row["role"]), row["subject"])
    return principal


def known_principal(state: Any, token: str) -> Principal | None:
    """The caller of ``token`` without reading DuckDB: the settings' admin token, or a token already seen by
    this process (tokens are never revoked, there is no endpoint for it: a verified token is safe to remember).
    None: not known yet (look it up)."""
    if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), state.settings.api.admin_token.encode()):
        return ADMIN
    known: dict[str, Principal] = state.principals
    return known.get(hash_token(token))


def allow(*roles: Role) -> object:
    """A dependency admitting admin and ``roles`` (403 for any other role), giving the caller."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role is not Role.admin and principal.role not in roles:
            allowed = ", ".join(["admin", *roles])
            raise HTTPException(403, f"a {principal.role} token may not do this (allowed: {allowed})")
        return principal

    return Depends(check)


Caller = Annotated[Principal, Depends(current_principal)]
PersonCaller = Annotated[Principal, allow(*PEOPLE)]
ProviderCaller = Annotated[Principal, allow(*PROVIDER_ROLES)]
DeveloperCaller = Annotated[Principal, allow(Role.developer)]
NodeReader = Annotated[Principal, allow(*PROVIDER_ROLES, Role.node)]
AdminCaller = Annotated[Principal, allow()]
