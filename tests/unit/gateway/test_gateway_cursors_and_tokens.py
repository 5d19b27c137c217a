"""Opaque cursors and access tokens: pure pieces of the gateway."""

import pytest

from gateway.adapters.tokens import TokenIssuer, digest, new_refresh_token
from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from kit.errors import InvalidArgument, Unauthenticated


def test_a_cursor_round_trips_and_the_last_page_has_none():
    cursor = encode_cursor("bookings", "service-token/with+odd=chars")
    assert "service-token" not in cursor
    assert decode_cursor("bookings", cursor) == "service-token/with+odd=chars"
    assert encode_cursor("bookings", "") is None
    assert decode_cursor("bookings", None) == ""


@pytest.mark.parametrize("garbage", ["%%%", "bm90IGpzb24", "eyJrIjoxfQ", "x" * 5000])
def test_a_garbled_cursor_is_invalid_argument(garbage):
    with pytest.raises(InvalidArgument) as caught:
        decode_cursor("places", garbage)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


def test_a_cursor_of_another_list_is_refused():
    with pytest.raises(InvalidArgument):
        decode_cursor("places", encode_cursor("users", "a@b.c"))


def test_an_access_token_carries_the_user_and_roles():
    issuer = TokenIssuer("s" * 40, "reserva", "api", ttl_s=60)
    claims = issuer.decode(issuer.issue("user-1", frozenset({"host", "client"})))
    assert claims.user_id == "user-1" and claims.roles == {"host", "client"}


def test_an_expired_token_is_refused_with_its_own_reason():
    issuer = TokenIssuer("s" * 40, "reserva", "api", ttl_s=60, clock=lambda: 1_000_000.0)
    with pytest.raises(Unauthenticated) as caught:
        TokenIssuer("s" * 40, "reserva", "api", ttl_s=60).decode(issuer.issue("u", frozenset({"client"})))
    assert caught.value.reason == "TOKEN_EXPIRED"


@pytest.mark.parametrize(
    "other", [TokenIssuer("t" * 40, "reserva", "api", 60), TokenIssuer("s" * 40, "evil", "api", 60)]
)
def test_a_token_signed_with_another_secret_or_issuer_is_refused(other):
    with pytest.raises(Unauthenticated) as caught:
        TokenIssuer("s" * 40, "reserva", "api", 60).decode(other.issue("u", frozenset({"agent"})))
    assert caught.value.reason == "INVALID_TOKEN"


def test_refresh_tokens_are_random_and_stored_as_digests():
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and len(first) >= 40
    assert digest(first) != first and len(digest(first)) == 64 and digest(first) == digest(first)
