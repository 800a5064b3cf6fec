"""DRF's content negotiation, remembered per process.

Which parser reads a request and which renderer answers it depend only on the request's
``Content-Type`` (or ``Accept`` header and the format asked for, ``?format=`` or a suffix)
and on the classes the view offers; DRF works them out again on every request, parsing the
media types each time (about a twentieth of the web CPU of ``POST /api/v1/outputs``,
bench/ingest). This class asks DRF once for each distinct question (the headers, and each
offered class with the media type and format it declares) and remembers the answer:
the same choices, the same errors (a refusal is never remembered; it is worked out again and
raised afresh). The memory is bounded: past ``LIMIT`` distinct questions (headers are the
client's to choose) it starts again empty.
"""

from rest_framework.negotiation import DefaultContentNegotiation

LIMIT = 512


class CachedContentNegotiation(DefaultContentNegotiation):
    _parsers: dict[tuple, int] = {}
    _renderers: dict[tuple, tuple[int, str]] = {}

    def select_parser(self, request, parsers):
        key = (request.content_type, *((type(parser), parser.media_type) for parser in parsers))
        index = self._parsers.get(key)
        if index is not None:
            return parsers[index]
        parser = super().select_parser(request, parsers)
        if parser is not None:
            _remember(self._parsers, key, parsers.index(parser))
        return parser

    def select_renderer(self, request, renderers, format_suffix=None):
        # (no query string, no format: the query string is not parsed for it)
        format_asked = format_suffix or (
            request.query_params.get(self.settings.URL_FORMAT_OVERRIDE) if request.META.get("QUERY_STRING") else None
        )
        key = (
            format_asked,
            request.META.get("HTTP_ACCEPT", "*/*"),
            *((type(renderer), renderer.media_type, renderer.format) for renderer in renderers),
        )
        chosen = self._renderers.get(key)
        if chosen is not None:
            return renderers[chosen[0]], chosen[1]
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        _remember(self._renderers, key, (renderers.index(renderer), media_type))
        return renderer, media_type


def _remember(memory: dict, key: tuple, value) -> None:
    if len(memory) >= LIMIT:
        memory.clear()
    memory[key] = value
