"""Signed webhook deliveries of decisions, with retries and an attempt log.

Each delivery is a row created in the deciding transaction and sent by a Celery
task enqueued on commit. The body is signed: ``X-HITL-Signature: sha256=<hex
HMAC-SHA256 of the raw body with the endpoint's secret>``; ``X-HITL-Delivery``
carries the delivery id, which receivers use to ignore repeats.
"""

import hashlib
import hmac
import re
import time
from datetime import datetime, timedelta

import orjson
import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hitl.enqueue import enqueue_on_commit
from hitl.errors import DomainValidationError, NotFoundError, RuleViolationError
from hitl.net import OutboundRefused, outbound_url_parse, pinned_session
from reviews.models import DeliveryStatus, Output, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from reviews.routing import routing_table
from tenants.audit import SYSTEM, audit_record
from tenants.models import Tenant
from tenants.services import tenant_config_changed

_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def attempt_error(exc: Exception) -> str:
    """What an admin reads of a failed attempt: the kind of failure in plain words and the
    system's own message, not the HTTP library's chain of internal objects."""
    timeout = settings.HITL_WEBHOOK_TIMEOUT_SECONDS
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"ConnectionError: no connection within {timeout} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"Timeout: no answer within {timeout} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLSError: the TLS handshake failed (" + str(exc).rsplit("(", 1)[-1].rstrip(")'\" ") + ")"
    if isinstance(exc, requests.exceptions.ConnectionError):
        found = _OS_ERROR.search(str(exc))
        return "ConnectionError: " + (found.group(1).strip().lower() if found else "the connection failed")
    return f"{type(exc).__name__}: {exc}"


def webhook_signature(*, secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int) -> int:
    """Exponential: 10 s, 20 s, 40 s ... (HITL_WEBHOOK_BACKOFF_SECONDS doubling), capped at one hour."""
    return min(settings.HITL_WEBHOOK_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 3600)


def webhook_url_validate(url: str) -> str:
    """The URL, or a DomainValidationError naming the url field (the rules are in hitl.net)."""
    if not isinstance(url, str) or len(url) > 500:
        raise DomainValidationError(
            "url: an http(s) URL of at most 500 characters",
            fields={"url": ["Must be an http or https URL of at most 500 characters."]},
        )
    try:
        outbound_url_parse(url)
    except OutboundRefused as error:  # a well-formed URL the outbound rules refuse: a 422
        message = str(error)[:1].upper() + str(error)[1:] + "."
        raise RuleViolationError(f"url: {message}", fields={"url": [message]}) from None
    return url


@transaction.atomic
def webhook_endpoint_create(*, tenant: Tenant, url: str, secret: str, description: str = "") -> WebhookEndpoint:
    webhook_url_validate(url)
    if not isinstance(secret, str) or len(secret) < 16 or len(secret) > 200:
        raise DomainValidationError("secret: 16 to 200 characters", fields={"secret": ["16 to 200 characters."]})
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).create(url=url, secret=secret, description=description)
    tenant_config_changed(tenant=tenant)  # decisions check "any endpoint?" from the cached routing table
    audit_record(
        tenant=tenant,
        actor=None,
        kind="webhook.created",
        object_type="webhook",
        object_id=endpoint.pk,
        data={"after": {"url": url, "description": description, "is_active": True}},
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, tenant: Tenant, endpoint_id: int) -> None:
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFoundError("Webhook not found.")
    before = endpoint.is_active
    endpoint.is_active = False  # deliveries and their log stay for the audit
    endpoint.save(update_fields=["is_active"])
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=None,
        kind="webhook.deleted",
        object_type="webhook",
        object_id=endpoint.pk,
        data={"before": {"is_active": before}, "after": {"is_active": False}, "url": endpoint.url},
    )


@transaction.atomic
def webhook_endpoint_update(
    *,
    tenant: Tenant,
    endpoint_id: int,
    description: str | None = None,
    is_active: bool | None = None,
    secret: str | None = None,
    actor=None,
) -> WebhookEndpoint:
    """Change what an endpoint is for, switch it on or off, or rotate its secret (None: unchanged).

    The URL is fixed once created (deliveries record where they went): register a
    new endpoint and deactivate this one instead.
    """
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFoundError("Webhook not found.")
    changed = []
    before = {"description": endpoint.description, "is_active": endpoint.is_active}
    if description is not None:
        if len(description) > 200:
            raise DomainValidationError(
                "description: at most 200 characters", fields={"description": ["At most 200 characters."]}
            )
        endpoint.description = description
        changed.append("description")
    if secret is not None:
        if not isinstance(secret, str) or len(secret) < 16 or len(secret) > 200:
            raise DomainValidationError("secret: 16 to 200 characters", fields={"secret": ["16 to 200 characters."]})
        endpoint.secret = secret
        changed.append("secret")
    if is_active is not None:
        if is_active and not endpoint.is_active:
            webhook_url_validate(endpoint.url)  # stored before today's rules, perhaps: checked again to send again
        endpoint.is_active = bool(is_active)
        changed.append("is_active")
    if changed:
        if actor is not None:
            endpoint._history_user = actor
        endpoint.save(update_fields=changed)
        tenant_config_changed(tenant=tenant)  # decisions check "any endpoint?" from the cached routing table
        after = {"description": endpoint.description, "is_active": endpoint.is_active}
        audit_record(
            tenant=tenant,
            actor=actor,
            kind="webhook.updated",
            object_type="webhook",
            object_id=endpoint.pk,
            data={
                "before": {key: before[key] for key in changed if key in before},
                "after": {key: after[key] for key in changed if key in after},
                "secret_rotated": "secret" in changed,
            },
        )
    return endpoint


def decision_payload(output: Output, event: str = "output.decided") -> dict:
    return {
        "event": event,
        "output": {
            "id": str(output.pk),
            "external_id": output.external_id,
            "application": output.application,
            "status": output.status,
            "delivery": output.delivery,
            "decision": output.decision,
            "final_output": output.final_output,
            "decided_at": output.decided_at.isoformat() if output.decided_at else None,
            "risk_tier": output.risk_tier,
            "policy_version": output.policy_version,
        },
    }


def webhook_deliveries_create(
    *, tenant: Tenant, output: Output, event: str = "output.decided"
) -> list[WebhookDelivery]:
    """One delivery per active endpoint, sent after the deciding transaction commits.

    Events: ``output.decided`` (people decided) and ``output.judged`` (the judges
    changed what the service may do: a held output may now be delivered, or one
    must not be).
    """
    from reviews.tasks import webhook_deliver_task

    if not routing_table(tenant=tenant).has_webhooks:
        return []
    payload = decision_payload(output, event)
    deliveries = [
        WebhookDelivery.objects.for_tenant(tenant).create(
            endpoint=endpoint, output=output, event=event, payload=payload
        )
        for endpoint in WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True)
    ]
    if deliveries:
        delivery_ids = [str(delivery.pk) for delivery in deliveries]

        def send() -> None:
            for delivery_id in delivery_ids:  # the first broker error ends it: the sweep sends the rest
                webhook_deliver_task.delay(delivery_id)

        enqueue_on_commit(send, what=f"{len(delivery_ids)} webhook deliveries")  # due now: the sweep finds them
    return deliveries


def webhook_attempt(*, delivery_id, now: datetime | None = None) -> WebhookDelivery | None:
    """Make one attempt if the delivery is still pending and due; safe to call twice.

    Three steps, so that no transaction stays open during the HTTP call: claim the
    attempt (count it and push the next attempt out, so a crash mid-send is retried,
    not lost), send with a deadline, record the outcome. A delivery that succeeded,
    failed for good, or whose endpoint was deactivated is left alone (or ended).
    """
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.unscoped.select_for_update(skip_locked=True, no_key=True)
            .select_related("endpoint")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None or delivery.next_attempt_at > now:
            return delivery
        if not delivery.endpoint.is_active:
            delivery.status, delivery.last_error = DeliveryStatus.FAILED, "endpoint deactivated"
            delivery.save(update_fields=["status", "last_error"])
            _delivery_audit(delivery, status_code=None)
            return delivery
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    claimed = (delivery.attempts, delivery.next_attempt_at)

    body = orjson.dumps({**delivery.payload, "delivery_id": str(delivery.pk)})
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "hitl-webhooks/1",
        "X-HITL-Event": delivery.event,
        "X-HITL-Delivery": str(delivery.pk),
        "X-HITL-Signature": webhook_signature(secret=delivery.endpoint.secret, body=body),
    }
    started = time.monotonic()
    status_code, error = None, ""
    url = delivery.endpoint.url
    try:
        # Resolved, checked and connected to once, here: a refused or unresolvable host is a failed attempt.
        with (
            pinned_session(url, allow_private=settings.HITL_WEBHOOK_ALLOW_PRIVATE) as session,
            session.post(
                url,
                data=body,
                headers=headers,
                timeout=settings.HITL_WEBHOOK_TIMEOUT_SECONDS,
                allow_redirects=False,
                stream=True,  # the body is not read: nothing of the receiver's answer is stored
            ) as response,
        ):
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
    except OutboundRefused as refused:
        error = f"endpoint {refused}"[:1000]
    except Exception as exc:  # whatever the endpoint does, the attempt is recorded
        error = attempt_error(exc)[:1000]

    with transaction.atomic():
        WebhookAttempt.objects.for_tenant(delivery.tenant).create(
            delivery=delivery,
            attempted_at=now,
            status_code=status_code,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        current = (
            WebhookDelivery.unscoped.select_for_update(no_key=True)
            .filter(pk=delivery.pk)
            .values_list("status", "attempts", "next_attempt_at")
            .first()
        )
        if current != (DeliveryStatus.PENDING, *claimed):
            # Replayed while this attempt was in flight: the new series decides the outcome.
            return WebhookDelivery.unscoped.select_related("endpoint").get(pk=delivery.pk)
        delivery.last_error = error
        if not error:
            delivery.status = DeliveryStatus.SUCCEEDED
        elif delivery.attempts >= settings.HITL_WEBHOOK_MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
        delivery.save(update_fields=["last_error", "status"])
        _delivery_audit(delivery, status_code=status_code)
    return delivery


def _delivery_object(delivery: WebhookDelivery) -> dict:
    """What a delivery's audit events are about: its output, or the delivery for other events."""
    if delivery.output_id is not None:
        return {"object_type": "output", "object_id": delivery.output_id}
    return {"object_type": "webhook_delivery", "object_id": delivery.pk}


def webhook_event_send(*, tenant: Tenant, event: str, payload: dict) -> list[WebhookDelivery]:
    """An event about something other than one output (``judge.flagged``): one delivery per
    active endpoint, signed and retried like decisions, sent when the transaction commits.
    The caller's service records the event's own audit row."""
    from reviews.tasks import webhook_deliver_task

    body = {"event": event, **payload}
    deliveries = [
        WebhookDelivery.objects.for_tenant(tenant).create(endpoint=endpoint, output=None, event=event, payload=body)
        for endpoint in WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True)
    ]
    if deliveries:
        delivery_ids = [str(delivery.pk) for delivery in deliveries]

        def send() -> None:
            for delivery_id in delivery_ids:
                webhook_deliver_task.delay(delivery_id)

        enqueue_on_commit(send, what=f"{len(delivery_ids)} webhook deliveries")
    return deliveries


def _delivery_audit(delivery: WebhookDelivery, *, status_code: int | None) -> None:
    """Each attempt's outcome: ``webhook.delivered``, ``webhook.failed`` (for good) or ``webhook.attempted``."""
    kind = {DeliveryStatus.SUCCEEDED: "webhook.delivered", DeliveryStatus.FAILED: "webhook.failed"}.get(
        delivery.status, "webhook.attempted"
    )
    audit_record(
        tenant=delivery.tenant,
        actor=SYSTEM,
        kind=kind,
        **_delivery_object(delivery),
        data={
            "delivery": delivery.pk,
            "endpoint": delivery.endpoint_id,
            "event": delivery.event,
            "attempts": delivery.attempts,
            "status_code": status_code,
            "error": delivery.last_error,
        },
    )


@transaction.atomic
def webhook_delivery_replay(*, tenant: Tenant, delivery_id) -> WebhookDelivery:
    """Send a delivery again now, as a fresh series of attempts with the same id.

    Any delivery: one that failed or succeeded, and one still waiting for its next
    retry (the endpoint is fixed: why wait for the backoff?). An attempt in flight
    meanwhile is logged but no longer decides the outcome (``webhook_attempt``).
    """
    from reviews.tasks import webhook_deliver_task

    delivery = WebhookDelivery.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFoundError("Delivery not found.")
    before = {"status": delivery.status, "attempts": delivery.attempts}
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, timezone.now()
    delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
    audit_record(
        tenant=tenant,
        actor=None,
        kind="webhook.replayed",
        **_delivery_object(delivery),
        data={"delivery": delivery.pk, "before": before},
    )
    delivery_id = str(delivery.pk)
    enqueue_on_commit(lambda: webhook_deliver_task.delay(delivery_id), what=f"webhook delivery {delivery_id}")
    return delivery


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Pending deliveries whose time has come (the periodic sweep re-enqueues them)."""
    now = now or timezone.now()
    return [
        str(pk)
        for pk in WebhookDelivery.unscoped.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    ]
