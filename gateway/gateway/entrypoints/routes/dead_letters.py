"""Agents: events the notifications consumer could not process after all retries, and their replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.schemas import Uuid
from gateway.entrypoints.schemas_workflows import DeadLetterOut, DeadLetterPageOut, DeadLetterStateFilter
from gateway.entrypoints.security import Principal, agent_only, gateway_of, request_id
from reserva.notifications.v1 import notifications_pb2 as nt

router = APIRouter(tags=["dead letters"])


@router.get("/v1/dead-letters", response_model=DeadLetterPageOut, summary="Agents: dead letters, oldest first")
async def list_dead_letters(
    request: Request,
    event_type: str | None = Query(default=None, max_length=100, description="e.g. booking.confirmed"),
    state: list[DeadLetterStateFilter] = Query(
        default=[], max_length=3, description="Default: PENDING and REPLAY_FAILED"
    ),
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(agent_only),
) -> dict[str, Any]:
    query = nt.ListDeadLettersRequest(
        event_type=event_type or "",
        states=[nt.DeadLetter.State.Value(s) for s in state],
        page_size=page_size,
        page_token=decode_cursor("dead-letters", page_token),
    )
    reply = await gateway_of(request).peers.notifications.call("ListDeadLetters", query)
    return {
        "dead_letters": [to_json(d) for d in reply.dead_letters],
        "next_page_token": encode_cursor("dead-letters", reply.next_page_token),
    }


@router.post(
    "/v1/dead-letters/{dead_letter_id}:replay",
    response_model=DeadLetterOut,
    response_model_exclude_unset=True,
    summary="Agents: process a dead letter's event again (REPLAYED, or REPLAY_FAILED with the new error)",
)
async def replay_dead_letter(
    dead_letter_id: Uuid, request: Request, _: Principal = Depends(agent_only), key: str = Depends(request_id)
) -> dict[str, Any]:
    replay = nt.ReplayDeadLetterRequest(request_id=key, id=dead_letter_id)
    return to_json(await gateway_of(request).peers.notifications.call("ReplayDeadLetter", replay))
