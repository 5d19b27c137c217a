"""Reviews: clients review completed bookings, hosts reply, agents hide; public list per place."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.responses import ReviewOut, ReviewPageOut
from gateway.entrypoints.schemas import HideIn, ReplyIn, ReviewIn, Uuid
from gateway.entrypoints.security import Principal, agent_only, authenticated, gateway_of, host_or_agent, request_id
from reserva.booking.v1 import booking_pb2 as bk

router = APIRouter(tags=["reviews"])


@router.post(
    "/v1/reviews",
    response_model=ReviewOut,
    response_model_exclude_unset=True,
    status_code=201,
    summary="Client: review a completed booking",
)
async def create_review(
    body: ReviewIn, request: Request, _: Principal = Depends(authenticated), key: str = Depends(request_id)
) -> dict[str, Any]:
    create = bk.CreateReviewRequest(request_id=key, booking_id=body.booking_id, rating=body.rating, text=body.text)
    return to_json(await gateway_of(request).peers.booking.call("CreateReview", create))


@router.get(
    "/v1/places/{place_id}/reviews",
    response_model=ReviewPageOut,
    response_model_exclude_unset=True,
    summary="Visible reviews of a place, newest first",
)
async def list_reviews(
    place_id: Uuid,
    request: Request,
    include_hidden: bool = False,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = bk.ListReviewsRequest(
        place_id=place_id,
        include_hidden=include_hidden,
        page_size=page_size,
        page_token=decode_cursor("reviews", page_token),
    )
    reply = await gateway_of(request).peers.booking.call("ListReviews", query)
    return {
        "reviews": [to_json(r) for r in reply.reviews],
        "next_page_token": encode_cursor("reviews", reply.next_page_token),
    }


@router.post(
    "/v1/reviews/{review_id}:reply",
    response_model=ReviewOut,
    response_model_exclude_unset=True,
    summary="Host: reply to a review of their place",
)
async def reply_to_review(
    review_id: Uuid,
    body: ReplyIn,
    request: Request,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    reply = bk.ReplyToReviewRequest(request_id=key, review_id=review_id, text=body.text)
    return to_json(await gateway_of(request).peers.booking.call("ReplyToReview", reply))


@router.post(
    "/v1/reviews/{review_id}:hide",
    response_model=ReviewOut,
    response_model_exclude_unset=True,
    summary="Agents: hide a review",
)
async def hide_review(
    review_id: Uuid,
    body: HideIn,
    request: Request,
    _: Principal = Depends(agent_only),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    hide = bk.HideReviewRequest(request_id=key, review_id=review_id, reason=body.reason)
    return to_json(await gateway_of(request).peers.booking.call("HideReview", hide))
