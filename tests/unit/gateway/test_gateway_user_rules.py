"""Rules of user fields and roles (domain, plain Python)."""

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
