"""What the quality API's modules share: the roles, an optional period, a queue parameter, the key's person."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter

from hitl.errors import (
    DomainValidationError,
    NotFoundError,
)
from reviews.apis.audit import period_parse
from reviews.models import Queue
from tenants.models import ApiKeyRole, KeyRoles

QUALITY = KeyRoles.QUALITY
OWN_OR_QUALITY = KeyRoles.QUALITY | {ApiKeyRole.REVIEWER}


DEFAULT_DAYS = 30


OPTIONAL_PERIOD = [
    OpenApiParameter(
        "from",
        {"type": "string", "format": "date-time"},
        description=f"Start (inclusive), RFC 3339 with an offset. Default: {DEFAULT_DAYS} days before `to`.",
    ),
    OpenApiParameter("to", {"type": "string", "format": "date-time"}, description="End (exclusive). Default: now."),
]


QUEUE_PARAMETER = OpenApiParameter(
    "queue", {"type": "string", "minLength": 1, "maxLength": 100}, description="Only reviews of this queue."
)


def optional_period(params):
    """``from`` and ``to``, each optional: the last 30 days until ``to`` (default now)."""
    now = timezone.now()
    given = {name: params[name] for name in ("from", "to") if params.get(name) is not None}
    if len(given) == 2:
        return period_parse(params)
    if "to" in given:
        end = period_parse({"from": "0001-01-01T00:00:00Z", "to": given["to"]})[1]
        try:
            return end - timedelta(days=DEFAULT_DAYS), end
        except OverflowError:  # the first days of year 1
            return datetime.min.replace(tzinfo=UTC), end
    if "from" in given:
        start = period_parse({"from": given["from"], "to": "9999-12-31T23:59:59.999999Z"})[0]
        return start, max(now, start)  # a start in the future: an empty period
    return now - timedelta(days=DEFAULT_DAYS), now


def queue_param(tenant, params) -> Queue | None:
    name = params.get("queue")
    if name is None:
        return None
    if not name:
        raise DomainValidationError("queue: a queue's name", fields={"queue": ["A queue's name."]})
    queue = Queue.objects.for_tenant(tenant).filter(name=name).first()
    if queue is None:
        raise NotFoundError("queue: no such queue.")
    return queue


def sees_everything(api_key) -> bool:
    return api_key.role in QUALITY


def person_or_none(api_key):
    return api_key.user if api_key.user_id else None
