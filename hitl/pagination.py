"""Cursor pagination: constant cost per page at any depth, and no counts."""

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from hitl.errors import RuleViolationError

_INVALID_CURSOR = "Invalid cursor; follow the next or previous link."


def _invalid_cursor() -> RuleViolationError:
    # Any string is a well-formed cursor, so one this API did not make is a 422 (not a 400 or DRF's 404).
    return RuleViolationError(f"cursor: {_INVALID_CURSOR}", fields={"cursor": [_INVALID_CURSOR]})


class TimeCursorPagination(CursorPagination):
    ordering = ("-received_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, ValueError, OverflowError, TypeError) as error:
            # A cursor is opaque: one edited by hand is refused, not a crash.
            raise _invalid_cursor() from error

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as error:
            raise _invalid_cursor() from error

    def get_page_size(self, request):
        # DRF falls back to the default for a bad page_size; the API says what was wrong instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"An integer from 1 to {self.max_page_size}."]})
        return int(raw)


def cursor_parameters(pagination: type[TimeCursorPagination] = TimeCursorPagination, items: str = "Items") -> list:
    """The OpenAPI parameters of a cursor-paginated list: its cursor and its page size, with the
    paginator's own limits."""
    size = f"{items} per page, 1 to {pagination.max_page_size} (default {pagination.page_size})."
    return [
        OpenApiParameter("cursor", str, description="Opaque cursor from a page's next or previous link."),
        OpenApiParameter(
            "page_size", {"type": "integer", "minimum": 1, "maximum": pagination.max_page_size}, description=size
        ),
    ]
