"""Read-side use cases: listing, calendar views, free slots and search. Each is one read-only unit
of work whose locks the probe measures (budget: 10)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from availability.domain.calendar import Busy, free_slots, slot_group
from availability.domain.errors import NotPlaceOwner, PlaceInactive, invalid
from availability.domain.model import DAY, Money, Place, Schedule, TimeRange, zone
from availability.service_layer import pagination
from availability.service_layer.handlers import Deps, get_place
from kit import page_tokens
from kit.identity import Caller

# The columns of a search hit, in the order the search's page statement (adapters/search.py)
# returns them: the place's summary fields, then the number of its group (from 1, in the order
# passed to `page`) and its free candidates ("1,2,5", counted from 1; NULL: the group's first ones).
SUMMARY_FIELDS = (
    "id",
    "title",
    "city",
    "capacity",
    "price_amount",
    "price_currency",
    "rating_average",
    "rating_count",
    "time_zone",
    "booking_mode",
    "cover_photo_url",
)
GROUP_COLUMN, FREE_COLUMN = len(SUMMARY_FIELDS), len(SUMMARY_FIELDS) + 1
RATING_COLUMN, ID_COLUMN = SUMMARY_FIELDS.index("rating_average"), SUMMARY_FIELDS.index("id")
SORTABLE = ("price_per_hour", "rating_average", "capacity", "create_time", "title")
# The kind of each sort value in a ListPlaces token (kit.page_tokens), as _sort_value writes it.
SORT_VALUE_KINDS = {
    "price_per_hour": page_tokens.int64,
    "rating_average": page_tokens.finite_number,
    "capacity": page_tokens.int32,
    "create_time": page_tokens.aware_time,
    "title": page_tokens.text,
}


@dataclass
class PlaceFilter:
    city: str = ""
    owner_id: str = ""
    min_capacity: int = 0
    min_price: Money | None = None
    max_price: Money | None = None
    min_rating: float = 0.0
    active: bool | None = None


def _price_filters(f: PlaceFilter) -> tuple[str | None, int | None, int | None]:
    for name, money in (("min_price", f.min_price), ("max_price", f.max_price)):
        if money is not None:
            money.validate(name)
    if f.min_price and f.max_price and f.min_price.currency_code != f.max_price.currency_code:
        raise invalid("min_price and max_price must use the same currency", "INVALID_CURRENCY", "max_price")
    if not 0.0 <= f.min_rating <= 5.0:
        raise invalid("min_rating must be 0.0-5.0", field="min_rating")
    if f.min_capacity < 0:
        raise invalid("min_capacity must be >= 0", field="min_capacity")
    currency = (f.min_price or f.max_price).currency_code if (f.min_price or f.max_price) else None
    return (
        currency,
        f.min_price.amount_minor if f.min_price else None,
        f.max_price.amount_minor if f.max_price else None,
    )


def _order(order_by: str) -> list[tuple[str, bool]]:
    fields = []
    for part in (order_by or "create_time desc").split(","):
        words = part.split()
        if not words or words[0] not in SORTABLE or len(words) > 2 or (len(words) == 2 and words[1] != "desc"):
            raise invalid(
                f"order_by: {part.strip()!r} is not one of {', '.join(SORTABLE)} (optionally followed by ' desc')",
                field="order_by",
            )
        fields.append((words[0], len(words) == 2))
    return fields


def _sort_value(place: Place, name: str):
    return {
        "price_per_hour": place.price_per_hour.amount_minor,
        "rating_average": place.rating_average,
        "capacity": place.capacity,
        "create_time": place.create_time.isoformat(),
        "title": place.title,
    }[name]


async def list_places(
    deps: Deps, f: PlaceFilter, order_by: str, size: int, token: str, caller: Caller
) -> tuple[list[Place], str]:
    """Places matching the filters, keyset-paginated in the requested order."""
    size = pagination.page_size(size)
    currency, low, high = _price_filters(f)
    fields = _order(order_by)
    query = pagination.query_hash("places", f.__dict__.__repr__(), order_by)
    position = pagination.decode(token, query, *(SORT_VALUE_KINDS[n] for n, _ in fields), page_tokens.uuid_text)
    active = f.active
    if active is None and not (f.owner_id and f.owner_id == caller.user_id):
        active = True
    async with deps.uow() as uow:
        found = await uow.places.list_filtered(f, active, currency, low, high, fields, position, size + 1)
    page, more = found[:size], len(found) > size
    next_token = ""
    if more:
        last = page[-1]
        next_token = pagination.encode(query, [_sort_value(last, n) for n, _ in fields] + [last.id])
    return page, next_token


def check_window(window: TimeRange, maximum: timedelta) -> None:
    if window.duration > maximum:
        raise invalid(f"time range must be at most {maximum.days} days long", "INVALID_TIME_RANGE", "time_range")


async def _readable_place(deps: Deps, place_id: str, caller: Caller) -> Place:
    place = await get_place(deps, place_id)
    if not place.may_be_changed_by(caller.user_id, caller.is_privileged):
        raise NotPlaceOwner(place_id)
    return place


@dataclass
class Entry:
    hold_id: str
    kind: str  # hold | confirmed | block
    booking_id: str
    expires_at: datetime | None
    range: TimeRange
    units: int
    reason: str


async def list_calendar_entries(
    deps: Deps, place_id: str, window: TimeRange, size: int, token: str, caller: Caller
) -> tuple[list[Entry], str]:
    """Occupying holds and blocks overlapping `window`, by start then id (owner or operator)."""
    size = pagination.page_size(size)
    check_window(window, timedelta(days=366))
    query = pagination.query_hash("entries", place_id, window.start, window.end)
    after = pagination.decode(token, query, page_tokens.aware_time, page_tokens.uuid_text)
    await _readable_place(deps, place_id, caller)
    async with deps.uow() as uow:
        rows = await uow.calendar.entries(place_id, window, after, size + 1)
    entries = [
        Entry(str(r.hold_id), r.kind, r.booking_id, r.expires_at, TimeRange(r.s, r.e), r.units, r.reason) for r in rows
    ]
    page = entries[:size]
    next_token = ""
    if len(entries) > size:
        next_token = pagination.encode(query, [page[-1].range.start.isoformat(), page[-1].hold_id])
    return page, next_token


async def export_calendar(
    deps: Deps, place_id: str, window: TimeRange | None, caller: Caller
) -> tuple[Place, list[Entry]]:
    """Every occupying entry of the window (default: the coming year) for an iCalendar feed."""
    now = deps.clock()
    window = window or TimeRange(now, now + timedelta(days=365))
    check_window(window, timedelta(days=366))
    place = await _readable_place(deps, place_id, caller)
    entries: list[Entry] = []
    token = ""
    while True:
        page, token = await list_calendar_entries(deps, place_id, window, 200, token, caller)
        entries += page
        if not token or len(entries) >= 20_000:
            return place, entries


def _dates_out_of_range():
    return invalid("start_date and end_date are out of the supported range", "INVALID_TIME_RANGE", "start_date")


async def list_free_slots(
    deps: Deps,
    place_id: str,
    first: date,
    last: date,
    duration: timedelta,
    units: int,
    size: int,
    token: str,
) -> tuple[list[TimeRange], Place, str]:
    """Bookable slots of one place between two local dates, earliest first."""
    size = pagination.page_size(size)
    if last < first or (last - first).days > 62:
        raise invalid("end_date must be 0-62 days after start_date", "INVALID_TIME_RANGE", "end_date")
    if duration <= timedelta(0):
        raise invalid("duration is required", field="duration")
    if units < 0:
        raise invalid("units must be >= 1", field="units")
    query = pagination.query_hash("slots", place_id, first, last, duration.total_seconds(), units)
    position = pagination.decode(token, query, page_tokens.aware_time)
    place = await get_place(deps, place_id)
    if not place.active:
        raise PlaceInactive(place_id)
    s, tz = place.schedule, place.zone
    from availability.domain.calendar import local_to_utc

    try:
        span_start = local_to_utc(first - DAY, 0, tz) or datetime.combine(first - DAY, datetime.min.time(), tz)
        span_end = local_to_utc(last + 2 * DAY, 0, tz) or datetime.combine(last + 2 * DAY, datetime.min.time(), tz)
        span = TimeRange(span_start - s.buffer_before, span_end + duration + s.buffer_after)
    except OverflowError:  # dates at the ends of the calendar (year 1 or 9999)
        raise _dates_out_of_range() from None
    now = deps.clock()
    async with deps.uow() as uow:
        busy = Busy.of(await uow.calendar.live_entries(place_id, [span], now))
    try:
        slots = free_slots(s, tz, first, last, duration, now, busy, place.unit_count, units or 1)
    except OverflowError:
        raise _dates_out_of_range() from None
    if position:
        (after,) = position
        slots = [x for x in slots if x.start > after]
    page = slots[:size]
    next_token = pagination.encode(query, [page[-1].start.isoformat()]) if len(slots) > size else ""
    return page, place, next_token


@dataclass
class SearchQuery:
    filters: PlaceFilter
    window: TimeRange
    duration: timedelta
    units: int = 1
    max_slots: int = 3
    page_size: int = 50
    page_token: str = ""


class SearchHit:
    """One place of a search page: its summary values (in SUMMARY_FIELDS order, as the page
    statement returns them) and its free slots. Hits share their slot tuples (a group's first
    slots): a page of 200 builds no per-hit objects beyond this one."""

    __slots__ = ("values", "slots")

    def __init__(self, values: tuple, slots: tuple[TimeRange, ...]):
        self.values, self.slots = values, slots

    @property
    def place(self) -> dict:
        return dict(zip(SUMMARY_FIELDS, self.values, strict=True))


def _page_to_json(hits: list[SearchHit], next_token: str) -> list:
    """A page as the cache keeps it: each distinct slot list once (epoch seconds), then per hit its
    values followed by the number of its slot list (compact: the cache is written on every miss)."""
    numbers: dict[int, int] = {}  # id of a (shared) slot tuple -> its number
    slot_lists, rows = [], []
    for h in hits:
        number = numbers.get(id(h.slots))
        if number is None:
            number = numbers[id(h.slots)] = len(slot_lists)
            slot_lists.append([t for s in h.slots for t in (s.start.timestamp(), s.end.timestamp())])
        rows.append((*h.values, number))
    return [slot_lists, rows, next_token]


def _page_from_json(raw: list) -> tuple[list[SearchHit], str]:
    slot_lists, rows, next_token = raw
    slots = [
        tuple(
            TimeRange(datetime.fromtimestamp(times[i], UTC), datetime.fromtimestamp(times[i + 1], UTC))
            for i in range(0, len(times), 2)
        )
        for times in slot_lists
    ]
    return [SearchHit(tuple(row[:-1]), slots[row[-1]]) for row in rows], next_token


def _validate_search(q: SearchQuery, now: datetime) -> None:
    if not q.filters.city:
        raise invalid("city is required", field="city")
    check_window(q.window, timedelta(days=31))
    if q.window.end > now + timedelta(days=730):
        raise invalid("window must end at most 730 days from now", "INVALID_TIME_RANGE", "window")
    if not timedelta(minutes=5) <= q.duration <= timedelta(days=31):
        raise invalid("duration must be between 5 minutes and 31 days", field="duration")
    if q.units < 0:
        raise invalid("units must be >= 1", field="units")
    if not 0 <= q.max_slots <= 20:
        raise invalid("max_slots_per_place must be 0-20", field="max_slots_per_place")


async def search_availability(deps: Deps, q: SearchQuery) -> tuple[list[SearchHit], str]:
    """Active places with free slots in the window, earliest free slot first, then rating and id.
    Every page is one keyset read of a fixed number of statements (see adapters/search.py): the
    schedule groups of the city, then the page itself. Candidate slots are planned once per group
    here; the calendar is read set-based in the database. Pages are cached per query and calendar
    version."""
    now = deps.clock()
    size = pagination.page_size(q.page_size)
    _validate_search(q, now)
    currency, low, high = _price_filters(q.filters)
    query = pagination.query_hash(
        "search",
        q.filters.__dict__.__repr__(),
        q.window.start,
        q.window.end,
        q.duration.total_seconds(),
        q.units,
        q.max_slots,
    )
    after = pagination.decode(
        q.page_token, query, page_tokens.aware_time, page_tokens.finite_number, page_tokens.uuid_text
    )
    # `now` moves the minimum notice: results are cached for the current minute only. "p3": the
    # stored layout (SearchCache, _page_to_json); processes of an older layout never read these.
    key = f"p3:{query}:{now.strftime('%Y%m%d%H%M')}:{size}:{q.page_token}"
    version, cached = await deps.search_cache.lookup(key)
    if cached is not None:
        return _page_from_json(cached)
    hits = await _search_page(deps, q, now, currency, low, high, after, size + 1)
    page = hits[:size]
    next_token = ""
    if len(hits) > size:
        last = page[-1]
        next_token = pagination.encode(
            query, [last.slots[0].start.isoformat(), last.values[RATING_COLUMN], last.values[ID_COLUMN]]
        )
    if version is not None:
        deps.search_cache.store(key, version, _page_to_json(page, next_token))
    return page, next_token


@lru_cache(maxsize=1024)
def _schedule(text: str) -> Schedule:
    """Schedules by their stored JSON (a group's key is a hash of it): parsed once per process."""
    return Schedule.from_dict(json.loads(text))


async def _search_page(
    deps: Deps, q: SearchQuery, now: datetime, currency, low, high, after, size: int
) -> list[SearchHit]:
    units, limit = q.units or 1, q.max_slots or 3
    async with deps.uow() as uow:
        groups = []
        for g in await uow.search.groups(q.filters.city):
            group = slot_group(_schedule(g.schedule_text), zone(g.time_zone), q.window, q.duration, now, limit)
            if group is not None:
                groups.append((g.key, group))
        if not groups:
            return []
        rows = await uow.search.page(
            groups,
            q.filters.city,
            q.filters.min_capacity,
            q.filters.min_rating,
            currency,
            low,
            high,
            now,
            units,
            limit,
            size,
            after,
        )
    candidates = [tuple(g.candidates) for _, g in groups]
    firsts = [c[:limit] for c in candidates]  # what a place untouched around the first slots has
    hits = []
    for row in rows:
        values, n, free = tuple(row), row[GROUP_COLUMN] - 1, row[FREE_COLUMN]
        slots = firsts[n] if free is None else tuple(candidates[n][int(i) - 1] for i in free.split(","))
        hits.append(SearchHit(values[:GROUP_COLUMN], slots))
    return hits
