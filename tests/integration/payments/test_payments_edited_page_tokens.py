"""Page tokens are unsigned base64 JSON: a caller can decode one payments issued, edit its position
and send it back, or send a JSON value of any shape. ListPayments and ListLedgerEntries answer such
a token INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN, never INTERNAL."""

from __future__ import annotations

import uuid

from page_token_support import HAND_MADE, NAIVE, NOT_A_UUID, decoded, edited, encoded, wrong_answers
from payments_helpers import authorize_request

from reserva.payments.v1 import payments_pb2 as pb


def positions(token: str, index: int, values: list) -> list[str]:
    """The token with item `index` of its position replaced by each of `values`."""
    position = decoded(token)["p"]
    return [edited(token, padded=False, p=position[:index] + [value] + position[index + 1 :]) for value in values]


def shapes(token: str) -> list[str]:
    position = decoded(token)["p"]
    return [
        edited(token, p=[]),
        edited(token, p=[*position, position[-1]]),
        edited(token, p={"0": position[0]}),
        edited(token, p="x" * len(position)),
        edited(token, p=None),
        *(encoded(shape, padded=False) for shape in HAND_MADE),
    ]


async def test_an_edited_list_payments_token_is_an_invalid_page_token(payments):
    user_id = str(uuid.uuid4())
    for _ in range(2):
        await payments.AuthorizePayment(authorize_request(user_id=user_id))
    request = pb.ListPaymentsRequest(user_id=user_id, page_size=1)
    token = (await payments.ListPayments(request)).next_page_token
    assert len(decoded(token)["p"]) == 2

    tokens = [
        *positions(token, 0, ["yesterday", NAIVE, 20300101, None, "0001-01-01T00:00:00+14:00"]),
        *positions(token, 1, [NOT_A_UUID, 12, None]),
        *shapes(token),
    ]

    async def call(page_token):
        request.page_token = page_token
        await payments.ListPayments(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)


async def test_an_edited_ledger_token_is_an_invalid_page_token(payments):
    payment = await payments.AuthorizePayment(authorize_request())
    await payments.CapturePayment(pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id))
    request = pb.ListLedgerEntriesRequest(payment_id=payment.id, page_size=1)
    token = (await payments.ListLedgerEntries(request)).next_page_token
    assert len(decoded(token)["p"]) == 1

    tokens = [*positions(token, 0, [-1, "1", 1.5, True, 2**40, None]), *shapes(token)]

    async def call(page_token):
        request.page_token = page_token
        await payments.ListLedgerEntries(request)

    wrong = await wrong_answers(call, tokens)
    assert wrong == [], "\n".join(wrong)
