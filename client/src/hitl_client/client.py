"""``HitlClient``: submit outputs, read them, wait for decisions; ``verify_webhook`` for receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from hitl_client.errors import DecisionTimeout, HitlError, WebhookSignatureError, api_error
from hitl_client.types import BatchResult, Output, Receipt, SessionTurn, WebhookEvent

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "hitl-client/0.1"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class HitlClient:
    """A client for one tenant's API key.

    Requests answered 429 or 5xx, and requests whose connection failed, are sent again
    up to ``max_retries`` times: after the server's ``Retry-After`` when it gives one,
    else after an exponential backoff (``backoff`` seconds doubling, with jitter, at most
    ``max_backoff``). A ``Retry-After`` longer than ``max_backoff`` is not waited for: the
    error is raised at once, carrying it. Submissions are safe to send again because
    ingest is idempotent on ``external_id`` (a repeat answers the stored record).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT})

    # -- outputs -----------------------------------------------------------------

    def submit(
        self,
        *,
        external_id: str,
        application: str,
        input: str | list | dict,
        output: str,
        trace: list[dict] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        confidence: float | None = None,
        **extra: Any,
    ) -> Receipt:
        """Submit one output; ``Receipt.created`` is False when it was stored before (a repeat).

        Raises ``ConflictError`` when this ``external_id`` was stored with a different body.
        ``extra`` passes fields of newer API versions through (``session_id``, ...).
        """
        body = _submission(
            external_id=external_id,
            application=application,
            input=input,
            output=output,
            trace=trace,
            metadata=metadata,
            model=model,
            confidence=confidence,
            **extra,
        )
        response = self._request("POST", "/api/v1/outputs", json=body)
        return Receipt.from_json(response.json(), created=response.status_code == 201)

    def submit_batch(self, items: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Submit up to 1000 outputs (each a dict of ``submit``'s fields) in one request.

        Items are judged one by one: an invalid item or a conflict is reported in its
        ``BatchItem`` and the others are stored.
        """
        body = {"items": [_submission(**item) for item in items]}
        return BatchResult.from_json(self._request("POST", "/api/v1/outputs/batch", json=body).json())

    def get_output(self, output_id: str) -> Output:
        return Output.from_json(self._request("GET", f"/api/v1/outputs/{output_id}").json())

    def get_session(self, session_id: str, *, max_turns: int = 10_000) -> list[SessionTurn]:
        """Every output submitted with ``session_id``, oldest first (following the pages, at most ``max_turns``)."""
        turns: list[SessionTurn] = []
        path: str | None = f"/api/v1/sessions/{quote(session_id, safe='')}?page_size=500"
        while path is not None and len(turns) < max_turns:
            body = self._request("GET", path).json()
            turns += [SessionTurn.from_json(item) for item in body["results"]]
            following = body.get("next")
            path = following[following.index("/api/") :] if following else None
        return turns[:max_turns]

    def wait_for_decision(
        self,
        output_id: str,
        *,
        timeout: float = 300.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 15.0,
    ) -> Output:
        """Poll the output until it is decided (approved, rejected, corrected, auto-approved, blocked).

        The interval grows by half each poll up to ``max_poll_interval``. Raises
        ``DecisionTimeout`` (carrying the last state read) after ``timeout`` seconds.
        A webhook tells sooner and costs nothing: prefer it where the service can receive one.
        """
        deadline = time.monotonic() + timeout
        interval = poll_interval
        while True:
            output = self.get_output(output_id)
            if output.decided:
                return output
            left = deadline - time.monotonic()
            if left <= 0:
                raise DecisionTimeout(output)
            self._sleep(min(interval, left))
            interval = min(interval * 1.5, max_poll_interval)

    # -- plumbing ----------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt >= self.max_retries:
                    raise HitlError(f"{method} {path}: {error}") from error
                delay = self._backoff_delay(attempt)
            else:
                if response.status_code < 400:
                    return response
                retry_after = _retry_after(response.headers.get("Retry-After"))
                error = api_error(response.status_code, _body(response), retry_after)
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise error
                if retry_after is not None and retry_after > self.max_backoff:
                    raise error  # longer than we may wait: the caller decides
                delay = retry_after if retry_after is not None else self._backoff_delay(attempt)
            attempt += 1
            self._sleep(delay)

    def _backoff_delay(self, attempt: int) -> float:
        ceiling = min(self.backoff * 2**attempt, self.max_backoff)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HitlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _submission(**fields: Any) -> dict[str, Any]:
    """The JSON body of one submission: fields left ``None`` are not sent (the API's defaults apply)."""
    return {name: value for name, value in fields.items() if value is not None}


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> WebhookEvent:
    """Check a webhook's ``X-HITL-Signature`` (``sha256=`` + hex HMAC-SHA256 of the raw body with the
    endpoint's secret) and return the event; raise ``WebhookSignatureError`` otherwise.

    Pass the body exactly as received (bytes), before any JSON parsing. Use the event's
    ``delivery_id`` to ignore repeats: a retried delivery carries the same one.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get("x-hitl-signature")
    if not signature:
        raise WebhookSignatureError("no X-HITL-Signature header")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookSignatureError("X-HITL-Signature does not match the body")
    try:
        payload = json.loads(raw)
    except ValueError as error:
        raise WebhookSignatureError("signed body is not JSON") from error
    return WebhookEvent(
        event=payload.get("event", lowered.get("x-hitl-event", "")),
        delivery_id=payload.get("delivery_id", lowered.get("x-hitl-delivery", "")),
        output=payload.get("output", {}),
        raw=payload,
    )
