"""Cursor pagination: constant cost per page at any depth, and no counts."""

from rest_framework.pagination import CursorPagination


class TimeCursorPagination(CursorPagination):
    ordering = ("-received_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
