"""Every template's HTML escapes the text it is given: events and announcements carry text users
wrote (an announcement's subject and body, a cancellation reason), which must reach an e-mail's
HTML part as text, never as markup, in every locale and for every role."""

from datetime import UTC, datetime

import pytest
from jinja2 import meta

from notifications.adapters.templates import TEMPLATE_DIR, JinjaRenderer
from notifications.domain.model import Channel, Preferences

HOSTILE = "<img src=x onerror=alert(1)>"
TEMPLATES = sorted(TEMPLATE_DIR.glob("*/*.j2"))


def _context(renderer: JinjaRenderer, source: str, role: str) -> dict:
    names = meta.find_undeclared_variables(renderer.env.parse(source)) - {"when", "self", "locale"}
    context = {name: HOSTILE for name in names}
    context.update({n: datetime(2030, 1, 1, tzinfo=UTC) for n in names if n.endswith("_time")})
    context.update(role=role, hours_before=2)
    return context


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("role", ["client", "host"])
def test_text_given_to_a_template_reaches_the_html_escaped(path, role):
    renderer = JinjaRenderer()
    context = _context(renderer, path.read_text(), role)
    rendered = renderer.render(path.stem, Channel.EMAIL, Preferences(user_id="u", locale=path.parent.name), context)
    assert "<img" not in rendered.html
    if "subject" in context:  # the announcement's, as written in the Subject header
        assert rendered.subject == HOSTILE
