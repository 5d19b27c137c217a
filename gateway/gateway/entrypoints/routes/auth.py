"""Registration and tokens: register, password login, refresh (rotation), logout (revocation)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from gateway.domain.model import User
from gateway.entrypoints.schemas import LogoutIn, RefreshIn, RegisterIn, TokenIn, TokenOut, UserOut
from gateway.entrypoints.security import Principal, authenticated, gateway_of, request_id
from gateway.service_layer import handlers
from kit.errors import RateLimited

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        phone=user.phone,
        time_zone=user.time_zone,
        locale=user.locale,
        roles=sorted(user.roles),
        active=user.active,
        create_time=user.created_at,
        update_time=user.updated_at,
    )


async def share_contact_details(request: Request, user: User) -> None:
    """Tell notifications the user's new contact details now if it answers at once; otherwise the
    gateway's retry worker does (the change was recorded with the user's)."""
    gateway = gateway_of(request)
    await handlers.share_contact_details(gateway.identity, gateway.contact_sender, user)


def token_out(pair: handlers.TokenPair) -> TokenOut:
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.post("/register", status_code=201, response_model=UserOut, summary="Create an account (client or host)")
async def register(body: RegisterIn, request: Request, _idempotency_key: str = Depends(request_id)) -> UserOut:
    new = handlers.NewUser(
        email=body.email,
        password=body.password,
        name=body.name,
        roles=frozenset(body.roles),
        phone=body.phone or None,
        time_zone=body.time_zone,
        locale=body.locale,
    )
    user = await handlers.register_user(gateway_of(request).identity, new)
    await share_contact_details(request, user)
    return user_out(user)


@router.post("/token", response_model=TokenOut, summary="Log in with e-mail and password")
async def token(body: TokenIn, request: Request) -> TokenOut:
    gateway = gateway_of(request)
    retry_after = await gateway.limiter.hit("login", body.email.strip().lower())
    if retry_after is not None:
        raise RateLimited("too many login attempts for this account", metadata={"retry_after": str(retry_after)})
    return token_out(await handlers.issue_tokens(gateway.identity, body.email, body.password))


@router.post("/refresh", response_model=TokenOut, summary="Trade a refresh token for a new token pair")
async def refresh(body: RefreshIn, request: Request) -> TokenOut:
    return token_out(await handlers.rotate_refresh_token(gateway_of(request).identity, body.refresh_token))


@router.post("/logout", status_code=204, response_class=Response, summary="Revoke this session's tokens")
async def logout(request: Request, body: LogoutIn | None = None, principal: Principal = Depends(authenticated)):
    refresh_token = body.refresh_token if body else None
    await handlers.revoke_session(gateway_of(request).identity, refresh_token, principal.claims)
    return Response(status_code=204)
