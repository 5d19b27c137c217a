"""Access tokens (short-lived JWT, HS256, PyJWT) and opaque refresh tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

from kit.errors import Unauthenticated


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    roles: frozenset[str]
    jti: str
    issued_at_ms: int
    expires_at: int


class TokenIssuer:
    def __init__(self, secret: str, issuer: str, audience: str, ttl_s: int, clock=time.time):
        self._secret, self._issuer, self._audience, self._ttl_s = secret, issuer, audience, ttl_s
        self._clock = clock

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def issue(self, user_id: str, roles: frozenset[str]) -> str:
        now = self._clock()
        claims = {
            "sub": user_id,
            "roles": sorted(roles),
            "iss": self._issuer,
            "aud": self._audience,
            "iat": int(now),
            # Millisecond issue time: revocation markers compare against it (iat is whole seconds).
            "iat_ms": int(now * 1000),
            "exp": int(now) + self._ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the access token is invalid", reason="INVALID_TOKEN") from None
        roles = claims.get("roles")
        if claims.get("typ") != "access" or not isinstance(roles, list):
            raise Unauthenticated("the access token is invalid", reason="INVALID_TOKEN")
        return AccessClaims(
            user_id=str(claims["sub"]),
            roles=frozenset(str(r) for r in roles),
            jti=str(claims["jti"]),
            issued_at_ms=int(claims.get("iat_ms") or int(claims["iat"]) * 1000),
            expires_at=int(claims["exp"]),
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
