"""Fixtures of the booking tests; they live in booking_support.py (a unique module name: `conftest`
is ambiguous across folders), with the helpers the tests import."""

from booking_support import *  # noqa: F403
