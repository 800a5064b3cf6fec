"""Template helpers of the auditor's pages: times in UTC, named as such; identifiers to copy."""

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def utc(moment: datetime | None, seconds: bool = True):
    """``2026-05-01 12:00:03 UTC`` in a ``<time>`` element; an em dash when there is none."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return format_html('<time datetime="{}">{} UTC</time>', moment.isoformat(), shown)


@register.filter
def copyable(value, shown: str = ""):
    """An identifier in full, with a button that copies it (``reviews/copy.js``). ``shown``: a label
    to show instead, or ``short`` for its first 12 characters (the copy is always whole)."""
    if value in (None, ""):
        return "—"
    if shown == "short":
        shown = f"{str(value)[:12]}…"
    return format_html('<code class="copy" data-copy="{}">{}</code>', value, shown or value)
