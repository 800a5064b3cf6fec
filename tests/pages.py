"""Helpers of page tests: people signed in through Django's test client, and forms read back
from a rendered page so that a test submits what a browser would."""

import html
import re

from django.test import Client

from tenants.services import membership_create
from tests.factories import UserFactory


def member(tenant, role: str, username: str | None = None, **extra):
    user = UserFactory(username=username) if username else UserFactory()
    membership_create(tenant=tenant, user=user, role=role, **extra)
    return user


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(page: str, form_id: str | None = None) -> dict:
    """The fields of a form as a browser would submit them (without any submit button's value).

    ``form_id`` picks one form by its id; else the whole page is read.
    """
    if form_id is not None:
        found = re.search(rf'<form[^>]*id="{re.escape(form_id)}"[^>]*>(.*?)</form>', page, re.S)
        assert found, f"no form {form_id}"
        page = found.group(1)
    data: dict = {}
    for tag in re.finditer(r"<input([^>]*)>", page):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))
        name = attrs.get("name")
        if not name or attrs.get("type") in ("submit", "button"):
            continue
        if attrs.get("type") in ("checkbox", "radio"):
            if re.search(r"\schecked\b", tag.group(1)):
                value = html.unescape(attrs.get("value", "on"))
                if name in data:
                    data[name] = [*([data[name]] if isinstance(data[name], str) else data[name]), value]
                else:
                    data[name] = value
            continue
        data[name] = html.unescape(attrs.get("value", ""))
    for select in re.finditer(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*\sselected', select.group(2))
        first = re.search(r'<option value="([^"]*)"', select.group(2))
        data[select.group(1)] = html.unescape((chosen or first).group(1)) if (chosen or first) else ""
    for area in re.finditer(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        text = html.unescape(area.group(2))
        data[area.group(1)] = text[1:] if text.startswith("\n") else text
    return data


def field_errors(page: str, field_id: str) -> str:
    """The text of the error list Django renders for one field (``id_<name>_error``), or ''."""
    found = re.search(rf'<ul class="errorlist" id="{re.escape(field_id)}_error">(.*?)</ul>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip() if found else ""
