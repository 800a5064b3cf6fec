"""The request being served, for the audit log's actor (tenants/audit.py)."""

from tenants.audit import request_bound


class AuditActorMiddleware:
    """Makes the current request known to ``audit_record`` for the time it is served, so that
    an event names the API key (and its role) or the signed-in person who made the change,
    even where the service was handed only a person or nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with request_bound(request):
            return self.get_response(request)
