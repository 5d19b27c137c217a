"""Jinja2 templates, one file per event type and locale under templates/<locale>/<event_type>.j2,
with one block per channel part: subject, text (e-mail, in-app and webhook body), html (e-mail) and
sms. A locale falls back from "fr-FR" to "fr" to "en"."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from notifications.domain.model import Channel, Preferences, Rendered

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LOCALE = "en"


class TemplateMissing(Exception):
    pass


class JinjaRenderer:
    def __init__(self, directory: Path = TEMPLATE_DIR):
        self.env = Environment(
            loader=FileSystemLoader(str(directory)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=(), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._cache: dict[tuple[str, str], object] = {}

    def has_template(self, event_type: str) -> bool:
        try:
            self._template(event_type, DEFAULT_LOCALE)
            return True
        except TemplateMissing:
            return False

    def _template(self, event_type: str, locale: str):
        key = (event_type, locale)
        if key in self._cache:
            return self._cache[key]
        candidates = [locale, locale.split("-")[0], DEFAULT_LOCALE]
        for candidate in dict.fromkeys(candidates):
            try:
                template = self.env.get_template(f"{candidate}/{event_type}.j2")
            except TemplateNotFound:
                continue
            self._cache[key] = template
            return template
        raise TemplateMissing(f"no template for {event_type}")

    def render(self, event_type: str, channel: Channel, prefs: Preferences, context: dict) -> Rendered:
        template = self._template(event_type, prefs.locale)
        zone = prefs.zone

        def when(value: datetime | None) -> str:
            if value is None:
                return ""
            return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

        ctx = template.new_context({**context, "when": when, "locale": prefs.locale}, shared=False)

        def block(name: str) -> str:
            if name not in template.blocks:
                return ""
            return "".join(template.blocks[name](ctx)).strip()

        if channel is Channel.SMS:
            return Rendered(subject="", text=block("sms") or block("subject"))
        return Rendered(
            subject=block("subject"),
            text=block("text"),
            html=block("html") if channel is Channel.EMAIL else "",
        )
