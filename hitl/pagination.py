"""Cursor pagination: constant cost per page at any depth, and no counts."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class TimeCursorPagination(CursorPagination):
    ordering = ("-received_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, ValueError, OverflowError, TypeError) as error:
            # A cursor is opaque: one edited by hand is a bad request, not a crash.
            raise ValidationError({"cursor": ["Invalid cursor; follow the next or previous link."]}) from error
