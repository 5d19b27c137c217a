"""Rules of user fields and roles (domain, plain Python)."""

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain import model
from gateway.domain.errors import InvalidUserField, RoleNotAllowed


def test_emails_are_normalised_and_bad_ones_refused():
    assert model.normalize_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("no-at-sign", "a@b", "a b@c.de", "x" * 250 + "@e.com"):
        with pytest.raises(InvalidUserField):
            model.normalize_email(bad)


def test_self_registration_cannot_grant_the_agent_role():
    assert model.validate_roles(["client", "host"], self_service=True) == {"client", "host"}
    with pytest.raises(RoleNotAllowed):
        model.validate_roles(["agent"], self_service=True)
    assert model.validate_roles(["agent"]) == {"agent"}
    for bad in ([], ["root"]):
        with pytest.raises(InvalidUserField):
            model.validate_roles(bad)


def test_profile_changes_are_validated_and_applied():
    user = model.User(
        id="1", email="a@b.cd", name="A", roles=frozenset({"client"}), password_hash="h", phone="+4915112345678"
    )
    changed = model.apply_profile(
        user, model.ProfileChanges(name=" Bea ", time_zone="America/New_York", clear_phone=True)
    )
    assert (changed.name, changed.time_zone, changed.phone) == ("Bea", "America/New_York", None)
    with pytest.raises(InvalidUserField) as caught:
        model.apply_profile(user, model.ProfileChanges(time_zone="Nowhere/City"))
    assert caught.value.reason == "INVALID_TIME_ZONE"
    with pytest.raises(InvalidUserField):
        model.apply_profile(user, model.ProfileChanges(locale="not a locale"))


def test_only_a_rotated_refresh_token_presented_again_is_a_reuse():
    assert model.is_reuse(model.RevocationReason.ROTATED)
    for stale in ("logout", "credentials_changed", "roles_changed", "deactivated", "reuse_detected"):
        assert not model.is_reuse(stale), stale
    assert model.is_reuse(None)  # revoked before reasons were recorded: maybe rotated, so still a reuse


def test_a_rotated_token_presented_again_at_once_is_a_retry_not_a_reuse():
    rotated = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert not model.is_reuse(model.RevocationReason.ROTATED, rotated, rotated + timedelta(seconds=3))
    assert model.is_reuse(model.RevocationReason.ROTATED, rotated, rotated + model.ROTATION_GRACE)
    assert model.is_reuse(None, rotated, rotated + timedelta(seconds=3))  # no reason recorded: not known rotated


def test_sessions_end_for_a_deactivation_a_new_password_or_new_roles():
    user = model.User(id="1", email="a@b.cd", name="A", roles=frozenset({"client"}), password_hash="h")
    why = model.sessions_end_because
    assert why(user, user.with_changes(name="B"), password_changed=False) is None
    assert why(user, user.with_changes(roles=frozenset({"host"})), password_changed=False) == "roles_changed"
    assert why(user, user, password_changed=True) == "credentials_changed"
    assert why(user, user.with_changes(active=False), password_changed=True) == "deactivated"
