"""Tables of the booking schema. Imperative mapping: the domain model stays plain dataclasses."""

from sqlalchemy import MetaData

from kit.outbox import outbox_table

SCHEMA = "booking"
metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)
outbox = outbox_table(metadata, SCHEMA)
