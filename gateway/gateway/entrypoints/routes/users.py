"""The caller's own profile, and user management for agents (list/search, create, update, roles,
deactivate, bulk operations, statistics)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from gateway.domain.model import ProfileChanges, UserFilter
from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.routes.auth import share_contact_details, user_out
from gateway.entrypoints.schemas import (
    AdminUserPatch,
    BulkIdsIn,
    BulkOut,
    BulkRolesIn,
    CreateUserIn,
    DayCount,
    ProfilePatch,
    UserOut,
    UserPage,
    UserStatsOut,
    Uuid,
)
from gateway.entrypoints.security import Principal, agent_only, authenticated, gateway_of, request_id
from gateway.entrypoints.timestamps import report_window
from gateway.service_layer import handlers

router = APIRouter(tags=["users"])


def _changes(body: ProfilePatch) -> ProfileChanges:
    return ProfileChanges(
        name=body.name,
        phone=body.phone or None,
        clear_phone=body.phone == "",
        time_zone=body.time_zone,
        locale=body.locale,
    )


@router.get("/v1/users/me", response_model=UserOut, summary="The caller's profile")
async def get_me(request: Request, principal: Principal = Depends(authenticated)) -> UserOut:
    return user_out(await handlers.get_user(gateway_of(request).identity, principal.user_id))


@router.patch("/v1/users/me", response_model=UserOut, summary="Change the caller's profile or password")
async def patch_me(
    body: ProfilePatch,
    request: Request,
    principal: Principal = Depends(authenticated),
    _idempotency_key: str = Depends(request_id),
) -> UserOut:
    user = await handlers.update_user(
        gateway_of(request).identity, principal.user_id, _changes(body), new_password=body.password
    )
    if body.locale is not None or body.time_zone is not None:  # else nothing notifications keeps changed
        await share_contact_details(request, user)
    return user_out(user)


@router.get("/v1/users", response_model=UserPage, summary="Agents: list and search users")
async def list_users(
    request: Request,
    q: str = Query(default="", max_length=200, pattern=r"^[^\x00]*$", description="Substring of e-mail or name"),
    role: Literal["client", "host", "agent"] | None = None,
    active: bool | None = None,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(agent_only),
) -> UserPage:
    after = decode_cursor("users", page_token) or None
    page, next_after = await handlers.list_users(
        gateway_of(request).identity, UserFilter(query=q, role=role, active=active), after, page_size
    )
    return UserPage(users=[user_out(u) for u in page], next_page_token=encode_cursor("users", next_after))


@router.post("/v1/users", status_code=201, response_model=UserOut, summary="Agents: create a user with any roles")
async def create_user(
    body: CreateUserIn,
    request: Request,
    _: Principal = Depends(agent_only),
    _idempotency_key: str = Depends(request_id),
) -> UserOut:
    new = handlers.NewUser(
        email=body.email,
        password=body.password,
        name=body.name,
        roles=frozenset(body.roles),
        phone=body.phone or None,
        time_zone=body.time_zone,
        locale=body.locale,
    )
    user = await handlers.register_user(gateway_of(request).identity, new, by_agent=True)
    await share_contact_details(request, user)
    return user_out(user)


@router.get("/v1/users/{user_id}", response_model=UserOut, summary="Agents: one user")
async def get_user(user_id: Uuid, request: Request, _: Principal = Depends(agent_only)) -> UserOut:
    return user_out(await handlers.get_user(gateway_of(request).identity, user_id))


@router.patch("/v1/users/{user_id}", response_model=UserOut, summary="Agents: update a user, roles, active flag")
async def patch_user(
    user_id: Uuid, body: AdminUserPatch, request: Request, _: Principal = Depends(agent_only)
) -> UserOut:
    user = await handlers.update_user(
        gateway_of(request).identity,
        user_id,
        _changes(body),
        new_password=body.password,
        roles=frozenset(body.roles) if body.roles is not None else None,
        active=body.active,
    )
    if body.locale is not None or body.time_zone is not None or body.roles is not None:
        await share_contact_details(request, user)
    return user_out(user)


@router.post("/v1/users/{user_id}:deactivate", response_model=UserOut, summary="Agents: deactivate a user")
async def deactivate_user(user_id: Uuid, request: Request, _: Principal = Depends(agent_only)) -> UserOut:
    identity = gateway_of(request).identity
    return user_out(await handlers.update_user(identity, user_id, ProfileChanges(), active=False))


@router.post("/v1/users:bulkDeactivate", response_model=BulkOut, summary="Agents: deactivate many users")
async def bulk_deactivate(body: BulkIdsIn, request: Request, _: Principal = Depends(agent_only)) -> BulkOut:
    gateway = gateway_of(request)
    result = await handlers.bulk_set_active(gateway.identity, body.user_ids, False, gateway.settings.bulk_batch_size)
    return BulkOut(requested=result.requested, changed=result.changed, batches=result.batches)


@router.post("/v1/users:bulkActivate", response_model=BulkOut, summary="Agents: reactivate many users")
async def bulk_activate(body: BulkIdsIn, request: Request, _: Principal = Depends(agent_only)) -> BulkOut:
    gateway = gateway_of(request)
    result = await handlers.bulk_set_active(gateway.identity, body.user_ids, True, gateway.settings.bulk_batch_size)
    return BulkOut(requested=result.requested, changed=result.changed, batches=result.batches)


@router.post("/v1/users:bulkSetRoles", response_model=BulkOut, summary="Agents: give many users the same roles")
async def bulk_set_roles(body: BulkRolesIn, request: Request, _: Principal = Depends(agent_only)) -> BulkOut:
    gateway = gateway_of(request)
    result = await handlers.bulk_set_roles(
        gateway.identity, body.user_ids, frozenset(body.roles), gateway.settings.bulk_batch_size
    )
    return BulkOut(requested=result.requested, changed=result.changed, batches=result.batches)


@router.get("/v1/reports/users", response_model=UserStatsOut, tags=["reports"], summary="Agents: user statistics")
async def user_stats(
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    time_zone: str = Query(default="UTC", max_length=64),
    _: Principal = Depends(agent_only),
) -> UserStatsOut:
    # Up to this moment (to the microsecond: a sign-up of this second counts).
    start, end = report_window(start_time, end_time or datetime.now(UTC))
    stats = await handlers.user_stats(gateway_of(request).identity, start, end, time_zone)
    return UserStatsOut(
        total=stats.total,
        active=stats.active,
        by_role=stats.by_role,
        signups_per_day=[DayCount(date=d, count=n) for d, n in stats.signups_per_day],
    )
