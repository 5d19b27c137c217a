"""Authentication (bearer access tokens) and role checks. The authenticated caller is put in
kit.context.current_caller so PeerClient passes it to the services in gRPC metadata; ownership is
decided by the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.adapters.tokens import AccessClaims
from gateway.bootstrap import Gateway
from kit.context import current_caller
from kit.errors import PermissionDenied, Unauthenticated
from kit.identity import Caller

bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/token")


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


@dataclass(frozen=True)
class Principal:
    claims: AccessClaims

    @property
    def user_id(self) -> str:
        return self.claims.user_id

    @property
    def roles(self) -> frozenset[str]:
        return self.claims.roles

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


async def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("a bearer access token is required", reason="UNAUTHENTICATED")
    gateway = gateway_of(request)
    claims = gateway.tokens.decode(credentials.credentials)
    if await gateway.revocations.is_revoked(claims):
        raise Unauthenticated("the access token has been revoked", reason="TOKEN_REVOKED")
    current_caller.set(Caller(user_id=claims.user_id, roles=claims.roles))
    return Principal(claims)


def require(*roles: str):
    """A dependency that admits callers having at least one of `roles`."""

    async def check(principal: Principal = Depends(authenticated)) -> Principal:
        if not principal.has(*roles):
            raise PermissionDenied(f"this needs one of the roles: {', '.join(roles)}", reason="ROLE_REQUIRED")
        return principal

    return check


agent_only = require("agent")
host_or_agent = require("host", "agent")


# Request ids the services see are the caller's key made the caller's own (see request_id).
_REQUEST_ID_NAMESPACE = uuid.UUID("6f1c0e8a-4d2b-5b7e-9a39-0c7d8e5f2a11")


async def request_id(
    request: Request,
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Retries with the same key return the original response (passed down as request_id).",
    ),
) -> str:
    """The request id passed to the services: a key of the caller's is made theirs (a UUID of the
    caller and the key), since services keep request ids across users: two users who happen to
    pick the same key must neither be refused nor get each other's answer."""
    if not idempotency_key:
        return str(uuid.uuid4())
    caller = getattr(request.state, "caller_id", None) or "anonymous"
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{caller}:{idempotency_key}"))
