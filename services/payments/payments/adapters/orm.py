"""Tables of the payments schema. Imperative mapping: the domain model stays plain dataclasses.

Index budget: every index of a table is one more lock in every transaction that writes it, so each
table has only the indexes its queries need (see the lock counts in the tests):
payments 3 (pk, by booking, by user), unsettled_payments 1, ledger_entries 1, refunds 2 (pk, the
pending ones), idempotency_keys 1, provider_events 1, sandbox_charges 2."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from kit.db import schema_metadata
from kit.outbox import outbox_table

SCHEMA = "payments"
metadata = schema_metadata(SCHEMA)
outbox = outbox_table(metadata, SCHEMA)


def _tz(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


payments = Table(
    "payments",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("booking_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", UUID(as_uuid=False), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("authorized_amount", BigInteger, nullable=False),
    Column("captured_amount", BigInteger, nullable=False),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("refund_pending_amount", BigInteger, nullable=False),
    Column("pending_operation", String(16)),
    Column("pending_amount", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("failure_reason", String(64), nullable=False),
    Column("provider_reference", String(100), nullable=False),
    _tz("authorization_expire_time", nullable=True),
    Column("request_id", String(64), nullable=False),
    _tz("create_time"),
    _tz("update_time"),
    Column("ledger_seq", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    # A void asked for while the authorization's outcome was unknown (or whose answer was lost):
    # the reconciler carries it out once the provider has answered.
    Column("void_requested", Boolean, nullable=False, server_default="false"),
    Column("void_reason", String(500), nullable=False, server_default=""),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint(
        "authorized_amount >= 0 AND refunded_amount >= 0 AND refund_pending_amount >= 0", name="balances_non_negative"
    ),
    # refunded <= captured <= authorized: no code path can store a payment that breaks it.
    CheckConstraint("refunded_amount + refund_pending_amount <= captured_amount", name="refunds_within_capture"),
    CheckConstraint("authorized_amount + captured_amount <= amount_minor", name="within_amount"),
    Index("ix_payments_booking_id_create_time_id", "booking_id", "create_time", "id"),
    Index("ix_payments_user_id_create_time_id", "user_id", "create_time", "id"),
)

# Payments whose authorization outcome is not known yet (REQUIRES_AUTHORIZATION, UNKNOWN), or with a
# requested void not yet carried out (Payment.needs_reconciliation): the reconciler's work list. A
# side table rather than a partial index on payments, which would add a lock to every payment write.
unsettled_payments = Table(
    "unsettled_payments",
    metadata,
    Column("payment_id", UUID(as_uuid=False), primary_key=True),
    _tz("since"),
)

# Append-only: rows are inserted, never updated or deleted (the service role has no grant needed
# to do so beyond ownership; the code has no such statement).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("payment_id", UUID(as_uuid=False), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("id", UUID(as_uuid=False), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booking_id", UUID(as_uuid=False), nullable=False),
    Column("refund_id", UUID(as_uuid=False)),
    _tz("create_time"),
    PrimaryKeyConstraint("payment_id", "seq", name="pk_ledger_entries"),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("payment_id", UUID(as_uuid=False), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_reference", String(100), nullable=False),
    _tz("create_time"),
    _tz("update_time"),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    # The reconciler's list of refunds whose provider call was never answered: only PENDING rows.
    Index("ix_refunds_pending_create_time", "create_time", postgresql_where=text("status = 'pending'")),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("request_id", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("resource_id", UUID(as_uuid=False)),
    Column("result", JSONB),
    _tz("create_time"),
    _tz("update_time"),
    PrimaryKeyConstraint("request_id", "operation", name="pk_idempotency_keys"),
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("payment_id", UUID(as_uuid=False)),
    _tz("received_time"),
)

# The sandbox card processor's own records (what a real processor keeps on its side).
sandbox_charges = Table(
    "sandbox_charges",
    metadata,
    Column("reference", String(40), primary_key=True),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("failure_code", String(64), nullable=False),
    Column("operation_keys", JSONB, nullable=False),
    _tz("authorization_expire_time", nullable=True),
    # What the sandbox does with the charge's later voids and refunds (from the test token).
    Column("test_behaviours", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _tz("create_time"),
    _tz("update_time"),
)
