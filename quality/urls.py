"""The quality layer's REST routes, mounted under /api/v1/ by hitl/urls.py."""

urlpatterns: list = []
