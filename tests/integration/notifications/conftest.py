"""Fixtures of the notifications tests; they live in notifications_support.py (a unique module name: `conftest`
is ambiguous across folders), with the helpers the tests import."""

from notifications_support import *  # noqa: F403
