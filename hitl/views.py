"""Plain pages of the project itself: the landing page and JSON 404/500 for the API."""

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.defaults import page_not_found, server_error

from hitl.api_errors import error_body
from hitl.json import dumps


def home(request):
    if request.user.is_authenticated:
        return redirect("tenants:home")
    return render(request, "home.html")


def _json_response(status: int, code: str, message: str):
    return HttpResponse(dumps(error_body(code, message)), status=status, content_type="application/json")


def api_not_found(request, *args, **kwargs):
    return _json_response(404, "not_found", "Not found.")


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return _json_response(404, "not_found", "Not found.")
    return page_not_found(request, exception)


def server_failure(request):
    if request.path.startswith("/api/"):
        return _json_response(500, "server_error", "Internal error; it has been logged.")
    return server_error(request)
