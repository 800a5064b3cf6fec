"""The quality lead's pages, mounted under /quality/ by hitl/urls.py."""

app_name = "quality"
urlpatterns: list = []
