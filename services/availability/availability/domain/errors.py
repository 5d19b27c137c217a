"""Errors of the availability domain, each a kit error kind with a stable reason."""

from kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


class PlaceNotFound(NotFound):
    def __init__(self, place_id: str) -> None:
        super().__init__(f"place {place_id} not found", reason="PLACE_NOT_FOUND", metadata={"place_id": place_id})


class HoldNotFound(NotFound):
    def __init__(self, hold_id: str) -> None:
        super().__init__(f"hold {hold_id} not found", reason="HOLD_NOT_FOUND", metadata={"hold_id": hold_id})


class BlockNotFound(NotFound):
    def __init__(self, block_id: str) -> None:
        super().__init__(f"block {block_id} not found", reason="BLOCK_NOT_FOUND", metadata={"block_id": block_id})


class NotPlaceOwner(PermissionDenied):
    def __init__(self, place_id: str = "") -> None:
        super().__init__(
            "only the place's owner or an agent may do this", reason="NOT_PLACE_OWNER", metadata={"place_id": place_id}
        )


class SlotUnavailable(FailedPrecondition):
    """Some requested ranges are taken; `details["conflicting_ranges"]` lists them (TimeRange)."""

    def __init__(self, place_id: str, conflicting_ranges: list) -> None:
        shown = ", ".join(f"{r.start.isoformat()}/{r.end.isoformat()}" for r in conflicting_ranges[:20])
        super().__init__(
            f"requested time is not available: {shown}",
            reason="SLOT_UNAVAILABLE",
            metadata={"place_id": place_id, "conflicting_ranges": shown},
            details={"conflicting_ranges": list(conflicting_ranges)},
        )


class ScheduleRefusal(FailedPrecondition):
    """A range breaks a schedule rule (reason OUTSIDE_OPENING_HOURS, INSUFFICIENT_NOTICE, ...)."""


class PlaceInactive(FailedPrecondition):
    def __init__(self, place_id: str) -> None:
        super().__init__(f"place {place_id} is not active", reason="PLACE_INACTIVE", metadata={"place_id": place_id})


class IllegalHoldTransition(FailedPrecondition):
    def __init__(self, hold_id: str, state: str, action: str) -> None:
        super().__init__(
            f"cannot {action} hold {hold_id} in state {state}",
            reason="ILLEGAL_HOLD_TRANSITION",
            metadata={"hold_id": hold_id, "state": state},
        )


class HoldExpired(FailedPrecondition):
    def __init__(self, hold_id: str) -> None:
        super().__init__(f"hold {hold_id} has expired", reason="HOLD_EXPIRED", metadata={"hold_id": hold_id})


class StaleEtag(Conflict):
    def __init__(self, place_id: str) -> None:
        super().__init__(
            f"place {place_id} was changed meanwhile; reload it and retry",
            reason="CONCURRENT_MODIFICATION",
            metadata={"place_id": place_id},
        )


def invalid(message: str, reason: str = "INVALID_ARGUMENT", field: str = "") -> InvalidArgument:
    return InvalidArgument(message, reason=reason, metadata={"field": field} if field else {})
