"""A small, typed client for the HITL governance API."""

from hitl_client.client import HitlClient, verify_webhook
from hitl_client.errors import (
    AuthenticationError,
    ConflictError,
    DecisionTimeout,
    HitlApiError,
    HitlError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
    WebhookSignatureError,
)
from hitl_client.types import BatchItem, BatchResult, Output, Receipt, SessionTurn, WebhookEvent

__all__ = [
    "AuthenticationError",
    "BatchItem",
    "BatchResult",
    "ConflictError",
    "DecisionTimeout",
    "HitlApiError",
    "HitlClient",
    "HitlError",
    "NotFoundError",
    "Output",
    "PermissionDeniedError",
    "RateLimitedError",
    "Receipt",
    "ServerError",
    "SessionTurn",
    "ValidationError",
    "WebhookEvent",
    "WebhookSignatureError",
    "verify_webhook",
]
