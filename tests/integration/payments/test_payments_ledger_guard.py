"""The database refuses a payment save whose balances disagree with the payment's ledger, in an
ordinary transaction and as a lone statement (sent without BEGIN/COMMIT, as the recording steps
are when the lock probe does not sample them): the statement fails whole and nothing is written."""

from __future__ import annotations

import uuid

import grpc
import pytest
from payments_helpers import Client, authorize_request, money, reason_of, settings


@pytest.fixture
def unsampled_uow(engine_for):
    """Units of work on the payments role whose transactions the lock probe never samples, so that
    a lone statement really goes without BEGIN/COMMIT."""
    from payments.adapters.unit_of_work import SqlAlchemyPaymentsUnitOfWork

    factory, probe = engine_for("payments", lock_probe_sample_rate=0.0)
    return lambda: SqlAlchemyPaymentsUnitOfWork(factory, probe)


@pytest.mark.parametrize("lone", [False, True], ids=["transaction", "lone statement"])
async def test_a_save_out_of_step_with_the_ledger_is_refused_whole(payments, admin_sql, unsafe_copy, lone):
    payment = await payments.AuthorizePayment(authorize_request(3_000))
    uow_factory, load = unsafe_copy
    async with uow_factory() as uow:
        if lone:
            uow.lone_statement()
        copy = await load(uow, payment.id)
        # A bug: the outstanding authorization moves without a ledger entry.
        copy.authorized_amount -= 1_000
        copy.version += 1
        with pytest.raises(Exception, match="disagree with its ledger"):
            await uow.save(copy)
    row = await admin_sql.fetchrow(
        "SELECT authorized_amount, version FROM payments.payments WHERE id = $1::uuid", payment.id
    )
    assert (row["authorized_amount"], row["version"]) == (3_000, copy.version - 1)


@pytest.fixture
def unsafe_copy(unsampled_uow, payments_server):
    """A unit of work and a way to take a payment as loaded without a statement (adopting the copy
    the flow saved last, as the recording steps do), so that the save is the only statement."""

    async def load(uow, payment_id: str):
        async with payments_server.deps.uow() as reader:
            payment = await reader.payments.get(payment_id)
        uow.payments.adopt(payment)
        return payment

    return unsampled_uow, load


async def fail(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@pytest.fixture
async def admin_sql(infra, database):
    import asyncpg

    from kit.provision import admin_dsn

    conn = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    yield conn
    await conn.close()


async def _story(payments, admin_sql) -> dict:
    """Authorize, replay the authorization, capture part, replay the capture, and a declined card:
    what the payment, its ledger, its keys and its events end as."""
    from reserva.payments.v1 import payments_pb2 as pb

    request = authorize_request(5_000)
    payment = await payments.AuthorizePayment(request)
    replayed = await payments.AuthorizePayment(request)
    capture = pb.CapturePaymentRequest(request_id=str(uuid.uuid4()), payment_id=payment.id, amount=money(4_000))
    captured = await payments.CapturePayment(capture)
    again = await payments.CapturePayment(capture)
    declined = await fail(payments.AuthorizePayment(authorize_request(700, token="tok_card_declined")))
    row = await admin_sql.fetchrow(
        "SELECT status, authorized_amount, captured_amount, version,"
        "  (SELECT array_agg(kind || ':' || amount_minor ORDER BY seq) FROM payments.ledger_entries l"
        "    WHERE l.payment_id = p.id) AS ledger,"
        "  (SELECT array_agg(operation || ':' || status ORDER BY operation) FROM payments.idempotency_keys k"
        "    WHERE k.resource_id = p.id) AS keys,"
        "  (SELECT array_agg(event_type ORDER BY id) FROM payments.outbox o WHERE o.aggregate_id = p.id::text)"
        "    AS events,"
        "  EXISTS (SELECT 1 FROM payments.unsettled_payments u WHERE u.payment_id = p.id) AS unsettled "
        "FROM payments.payments p WHERE id = $1::uuid",
        payment.id,
    )
    return {
        **dict(row),
        "replays_agree": (replayed.id, again.captured_amount) == (payment.id, captured.captured_amount),
        "declined": reason_of(declined),
    }


async def test_recording_steps_the_probe_does_not_measure_end_as_measured_ones(settings_for, payments, admin_sql):
    """Unmeasured, the authorization's key and payment are one statement and each recorded answer
    is one statement without BEGIN/COMMIT (the sandbox's new charge too): everything ends exactly
    as on the strict server, where each of them is a measured transaction."""
    from payments.bootstrap import start

    unmeasured = await start(settings(settings_for, lock_probe_strict=False, lock_probe_sample_rate=0.0))
    try:
        async with grpc.aio.insecure_channel(unmeasured.address) as channel:
            lone = await _story(Client(channel), admin_sql)
        measured = await _story(payments, admin_sql)
    finally:
        await unmeasured.stop(0)
    assert lone == measured
    assert lone["status"] == "captured" and lone["ledger"] == ["authorization:5000", "capture:4000", "release:1000"]
    assert lone["keys"] == ["authorize:completed", "capture:completed"] and lone["replays_agree"]
    assert lone["declined"] == "PAYMENT_DECLINED" and not lone["unsettled"]
