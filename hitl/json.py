"""orjson parser and renderer: the API's JSON is on the ingest hot path."""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from hitl.api_errors import RequestTooLarge


def _default(value):
    # Lazy strings (Django translations, DRF messages) and Decimals.
    return str(value)


def dumps(data) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class OrjsonParser(BaseParser):
    """Parses JSON, refusing bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` before reading them whole."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(limit)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ParseError(f"Malformed JSON: {error}") from error
        # PostgreSQL cannot store NUL characters in text or jsonb; say so instead of failing later.
        # The byte scan is cheap; the walk only runs when the escape is there (it may be "\\u0000", a backslash).
        if b"\\u0000" in raw and _holds_nul(data):
            raise ParseError("The body contains a NUL character (\\u0000), which cannot be stored.")
        return data


def _holds_nul(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return dumps(data)
