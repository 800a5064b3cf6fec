"""LLM-as-a-judge: ask any OpenAI-compatible chat-completions endpoint whether an output is acceptable.

Works with OpenAI, vLLM, Ollama, LiteLLM and anything else that serves
``POST {base_url}/chat/completions``. The judge must answer with a JSON object
``{"pass": bool, "score": 0..1, "rationale": str}``. Transient trouble (connection
errors, timeouts, 408, 429, 5xx, answers that are not in that shape) is retried
with backoff; a request the endpoint refuses for good (400, 401, 404, ...) is not.
Whatever happens, ``llm_judge`` returns a ``Verdict``: ``error`` when the judge
could not answer, which sends the output to a person.

The endpoint's API key is passed in, never stored on ``LlmParams``, and is scrubbed
from every text that leaves this module (rationales, log lines).
"""

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

import requests
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from urllib3.util import parse_url

from hitl.net import OutboundRefused, outbound_url_parse, pinned_session
from policies.judges.base import JudgeInput, Verdict

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("output", "input", "context", "rubric", "application", "metadata")
# Names only: a doubled brace around anything else (a JSON example, say) is left as written.
PLACEHOLDER_PATTERN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
FENCE_PATTERN = re.compile(r"^```(?:json)?[ \t]*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)

DEFAULT_SYSTEM_PROMPT = (
    "You are a strict evaluator of another AI system's output. Judge the output you are given "
    "against the instructions and criteria in the user message. Answer only with a JSON object, "
    'nothing else: {"pass": true|false, "score": number from 0 to 1 (1 = fully acceptable), '
    '"rationale": "short reason"}.'
)

MAX_WAIT_SECONDS = 60.0  # longest pause between attempts, whatever the backoff or Retry-After says
MAX_ANSWER_BYTES = 2_000_000  # a judge's answer is small; more is an endpoint misbehaving
MAX_RATIONALE_CHARS = 2000
MAX_EXCERPT_CHARS = 200
REDACTED = "[redacted]"
RETRYABLE_STATUSES = frozenset({408, 429})


# A judge task's soft time limit is 270 s (reviews/tasks.py): one judgement must fit well inside.
MAX_JUDGE_SECONDS = 240


class LlmParams(BaseModel):
    """Settings of an LLM judge (``Judge.params`` when ``kind`` is ``llm``); the API key is kept apart."""

    model_config = ConfigDict(extra="forbid", strict=True)

    base_url: Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)] = Field(
        description='OpenAI-compatible API root, e.g. "https://api.openai.com/v1" or "http://ollama:11434/v1"; '
        "the judge POSTs to <base_url>/chat/completions."
    )
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description='Model name as the endpoint knows it, e.g. "gpt-4o-mini" or "llama3.1:8b".'
    )
    prompt_template: Annotated[str, StringConstraints(min_length=1, max_length=20000)] = Field(
        description="The user message. Placeholders: {{output}} (required), {{input}}, {{context}}, {{rubric}}, "
        "{{application}}, {{metadata}}; input, rubric and metadata are filled in as compact JSON, context as "
        "numbered passages. Single braces are left as written."
    )
    system_prompt: Annotated[str, StringConstraints(max_length=20000)] = Field(
        default=DEFAULT_SYSTEM_PROMPT,
        description="The system message; it must ask for a JSON object with pass, score (0..1) and rationale. "
        "Empty to send none.",
    )
    timeout_seconds: Annotated[float, Field(ge=0.1, le=300)] = Field(
        default=30.0, description="Time allowed for each request."
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=3, description="Retries after a transient failure (so at most max_retries + 1 requests)."
    )
    backoff_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        default=1.0, description="Base of the exponential backoff (with jitter, capped at 60 s) between attempts."
    )
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=1, le=8192)] = Field(default=512, description="Longest answer allowed.")
    json_mode: bool = Field(
        default=True, description='Ask for a JSON answer (response_format {"type": "json_object"}).'
    )
    input_cost_per_million: Annotated[float, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="Price per million prompt tokens, used when the endpoint reports no cost."
    )
    output_cost_per_million: Annotated[float, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="Price per million completion tokens, used when the endpoint reports no cost."
    )

    @model_validator(mode="after")
    def _fits_the_task_time_limit(self):
        worst = worst_case_seconds(self)
        if worst > MAX_JUDGE_SECONDS:
            raise ValueError(
                f"timeout_seconds x (max_retries + 1) plus the backoff may take {worst:.0f} s; "
                f"at most {MAX_JUDGE_SECONDS} s fit in a judge task: lower the timeout or the retries"
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Parsed as the HTTP client will parse it (hitl/net.py): user-info, backslashes and
        # malformed hosts are refused, so the host checked before a call is the one called.
        try:
            outbound_url_parse(value)
        except OutboundRefused as error:
            raise ValueError(str(error)) from None
        parts = parse_url(value)
        if parts.query is not None or parts.fragment is not None:
            # The path is extended with /chat/completions, and the key goes in a header, not the URL.
            raise ValueError("must not carry a query string or a fragment")
        return value

    @field_validator("prompt_template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted({name for name in PLACEHOLDER_PATTERN.findall(value) if name not in PLACEHOLDERS})
        if unknown:
            known = ", ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
            names = ", ".join(f"{{{{{name}}}}}" for name in unknown)
            raise ValueError(f"unknown placeholder {names}; the placeholders are {known}")
        if "output" not in PLACEHOLDER_PATTERN.findall(value):
            raise ValueError("must contain {{output}}, where the output being judged goes")
        return value


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _placeholder_values(judge_input: JudgeInput) -> dict[str, str]:
    given = judge_input.input
    return {
        "output": judge_input.output,
        "input": "" if given is None else given if isinstance(given, str) else _compact_json(given),
        "context": "\n\n".join(f"[{number}] {passage}" for number, passage in enumerate(judge_input.context, 1)),
        "rubric": "" if judge_input.rubric is None else _compact_json(judge_input.rubric),
        "application": judge_input.application,
        "metadata": _compact_json(judge_input.metadata or {}),
    }


def llm_prompt(params: LlmParams, judge_input: JudgeInput) -> list[dict]:
    """The chat messages sent to the judge.

    Placeholders are filled in one pass, so text inside the output that looks like a
    placeholder (``{{rubric}}`` in a user's message, say) is not expanded.
    """
    values = _placeholder_values(judge_input)
    user = PLACEHOLDER_PATTERN.sub(lambda match: values.get(match.group(1), match.group(0)), params.prompt_template)
    messages = [{"role": "system", "content": params.system_prompt}] if params.system_prompt else []
    messages.append({"role": "user", "content": user})
    return messages


class _Redactor:
    """Removes the API key (as sent, and as it would appear inside a JSON string) from text."""

    def __init__(self, api_key: str | None):
        self._secrets = sorted({api_key, json.dumps(api_key)[1:-1]} if api_key else set(), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return "_Redactor(...)"


class _Failure(Exception):
    """One failed attempt. ``retryable`` failures are tried again; ``wait`` overrides the backoff.

    ``reason`` goes into the verdict, which every role sees; ``detail`` (what the endpoint
    said) goes to the server log only.
    """

    def __init__(self, reason: str, *, retryable: bool, wait: float | None = None, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.wait = wait
        self.detail = detail


class _Usage:
    """Tokens and cost summed over attempts (an unusable answer costs tokens too)."""

    def __init__(self, params: LlmParams):
        self.params = params
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.cost: float | None = None
        self.model = ""

    def add(self, envelope: dict) -> None:
        if isinstance(envelope.get("model"), str) and envelope["model"]:
            self.model = envelope["model"][:200]
        usage = envelope.get("usage")
        if not isinstance(usage, dict):
            return
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        if prompt is not None:
            self.prompt_tokens = (self.prompt_tokens or 0) + prompt
        if completion is not None:
            self.completion_tokens = (self.completion_tokens or 0) + completion
        cost = _amount(usage.get("cost"))
        if cost is None:
            cost = self._priced(prompt, completion)
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def _priced(self, prompt: int | None, completion: int | None) -> float | None:
        input_price, output_price = self.params.input_cost_per_million, self.params.output_cost_per_million
        if (input_price is None and output_price is None) or (prompt is None and completion is None):
            return None
        return ((prompt or 0) * (input_price or 0.0) + (completion or 0) * (output_price or 0.0)) / 1_000_000


# What a verdict row can hold; larger figures are garbage from the endpoint and are dropped.
_MAX_TOKENS = 2**31 - 1
_MAX_COST = 999_999.0


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_TOKENS:
        return value
    return None


def _amount(value: Any) -> float | None:
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if number and 0 <= value <= _MAX_COST else None


def worst_case_seconds(params: "LlmParams") -> float:
    """The longest one judgement may take: every attempt timing out, with the longest backoffs."""
    backoff = sum(min(60.0, params.backoff_seconds * 2**attempt) for attempt in range(params.max_retries))
    return params.timeout_seconds * (params.max_retries + 1) + backoff


# What a refusal most often means, instead of the endpoint's own words (see _status_failure).
STATUS_HINTS = {
    400: "check the model and the settings",
    401: "check the API key",
    403: "check the API key",
    404: "check base_url and model",
    422: "check the model and the settings",
}


def _status_failure(status: int, raw: bytes, redact: Callable[[str], str], *, wait: float | None) -> _Failure:
    """An HTTP error as a failure whose reason has the status and a generic hint, never the body.

    The verdict is shown to every role, and the body is whatever the endpoint chose to write:
    a base_url pointed at something that is not a model (an internal service, where private
    addresses are allowed) would have its answers read out to reviewers. The excerpt goes to
    the server log, where operators look.
    """
    try:
        phrase = " " + HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    detail = _excerpt(raw, redact)
    if status in RETRYABLE_STATUSES or status >= 500:
        return _Failure(f"HTTP {status}{phrase}", retryable=True, wait=wait, detail=detail)
    hint = STATUS_HINTS.get(status)
    return _Failure(f"HTTP {status}{phrase} (not retried){': ' + hint if hint else ''}", retryable=False, detail=detail)


def _excerpt(body: bytes, redact: Callable[[str], str]) -> str:
    """A short, key-free excerpt of an endpoint's error body, preferring its error message (for the log)."""
    text = body.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(document.get("message"), str):
            text = document["message"]
    # Redact before cutting: a cut could otherwise leave a prefix of the key behind.
    text = " ".join(redact(text).split())
    return text if len(text) <= MAX_EXCERPT_CHARS else text[: MAX_EXCERPT_CHARS - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """A numeric ``Retry-After`` in seconds, capped; None for a date or nonsense (the backoff applies)."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS) if math.isfinite(seconds) else None


def _backoff(params: LlmParams, retry_number: int) -> float:
    """Exponential, with jitter so that many judges do not retry in step: between half and all of the step."""
    step = min(params.backoff_seconds * 2 ** (retry_number - 1), MAX_WAIT_SECONDS)
    return step / 2 + random.uniform(0, step / 2)


def _read_body(response: requests.Response, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _Failure(f"answer larger than {MAX_ANSWER_BYTES} bytes", retryable=True)
        if time.monotonic() > deadline:
            raise requests.Timeout("the answer took longer than the timeout to arrive")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(envelope: Any) -> tuple[bool, float, str]:
    """The judge's pass, score and rationale from a chat-completions answer, or a retryable failure."""
    choices = envelope.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Failure("garbage answer: no choices", retryable=True)
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise _Failure("garbage answer: no message content", retryable=True)
    content = content.strip()
    fenced = FENCE_PATTERN.match(content)
    if fenced:
        content = fenced.group(1).strip()
    try:
        verdict = json.loads(content)
    except (ValueError, RecursionError):
        verdict = None
    if not isinstance(verdict, dict):
        raise _Failure("garbage answer: content is not a JSON object", retryable=True)
    passed, score, rationale = verdict.get("pass"), verdict.get("score"), verdict.get("rationale")
    if not isinstance(passed, bool):
        raise _Failure('garbage answer: "pass" is not true or false', retryable=True)
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score) or not 0 <= score <= 1:
        raise _Failure('garbage answer: "score" is not a number from 0 to 1', retryable=True)
    if not isinstance(rationale, str):
        raise _Failure('garbage answer: "rationale" is not a string', retryable=True)
    return passed, float(score), rationale.strip()


def _attempt(
    session: requests.Session,
    url: str,
    headers: dict,
    body: dict,
    params: LlmParams,
    usage: _Usage,
    redact: Callable[[str], str],
) -> tuple[bool, float, str]:
    """One request through the pinned session; raises ``_Failure`` when it gives no usable verdict."""
    try:
        started = time.monotonic()
        # No redirects: a redirect could lead to an address the SSRF guard never saw.
        with session.post(
            url, json=body, headers=headers, timeout=params.timeout_seconds, allow_redirects=False, stream=True
        ) as response:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            raw = _read_body(response, started + params.timeout_seconds)
    except requests.Timeout:
        raise _Failure(f"timed out after {params.timeout_seconds:g} s", retryable=True) from None
    except (
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as error:
        raise _Failure(f"connection failed ({type(error).__name__})", retryable=True) from None
    except OutboundRefused as refused:  # the client read another origin than the one checked
        raise _Failure(f"judge endpoint {refused}", retryable=False) from None
    except requests.RequestException as error:
        # Invalid URL or header: trying again will not help. The message may quote the header.
        raise _Failure(f"request failed: {type(error).__name__}: {redact(str(error))[:300]}", retryable=False) from None

    if status == 429:
        raise _Failure("HTTP 429 rate limited", retryable=True, wait=_retry_after(retry_after))
    if not 200 <= status < 300:
        raise _status_failure(status, raw, redact, wait=_retry_after(retry_after))
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        envelope = None
    if not isinstance(envelope, dict):
        raise _Failure("garbage answer: body is not a JSON object", retryable=True)
    usage.add(envelope)
    return _answer(envelope)


def llm_judge(
    params: LlmParams,
    api_key: str | None,
    judge_input: JudgeInput,
    *,
    allow_private: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Ask the judge about one output; never raises for anything the endpoint does.

    ``allow_private`` lets the endpoint be on a private network (development, or a
    self-hosted model the platform runs); ``sleep`` is injectable so tests do not wait.
    """
    started = time.monotonic()
    url = params.base_url.rstrip("/") + "/chat/completions"
    redact = _Redactor(api_key)
    usage = _Usage(params)
    attempts = 0

    def verdict(result, score, rationale) -> Verdict:
        return Verdict(
            result=result,
            score=score,
            rationale=redact(rationale)[:MAX_RATIONALE_CHARS],
            latency_ms=(time.monotonic() - started) * 1000,
            attempts=attempts,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            model=usage.model or params.model,
        )

    if api_key and not (api_key.isascii() and api_key.isprintable()):
        # It could not be sent in a header; and the error saying so would quote it.
        return verdict("error", None, "the API key has characters that cannot be sent in an HTTP header")

    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "hitl-judge/1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body: dict[str, Any] = {
        "model": params.model,
        "messages": llm_prompt(params, judge_input),
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
    }
    if params.json_mode:
        body["response_format"] = {"type": "json_object"}

    try:
        # The host is resolved and checked once; every attempt connects to the addresses checked here.
        session = pinned_session(url, allow_private=allow_private)
    except OutboundRefused as refused:
        return verdict("error", None, f"judge endpoint {refused}")
    total = params.max_retries + 1
    with session:
        while True:
            attempts += 1
            try:
                passed, score, rationale = _attempt(session, url, headers, body, params, usage, redact)
            except _Failure as failure:
                logger.warning(
                    "LLM judge %s (model %s), attempt %d of %d failed: %s%s",
                    url,
                    params.model,
                    attempts,
                    total,
                    redact(failure.reason),
                    f" (the endpoint said: {failure.detail})" if failure.detail else "",
                )
                if not failure.retryable:
                    return verdict("error", None, failure.reason)
                if attempts >= total:
                    plural = "attempt" if attempts == 1 else "attempts"
                    return verdict("error", None, f"{failure.reason} after {attempts} {plural}")
                sleep(failure.wait if failure.wait is not None else _backoff(params, attempts))
                continue
            return verdict("pass" if passed else "fail", score, rationale or "(no rationale given)")
