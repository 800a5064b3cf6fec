"""The LLM judge against a real local chat-completions server (no patched client)."""

import json
import logging
import socket
import time

import pytest
from pydantic import ValidationError

from policies.judges.base import JudgeInput
from policies.judges.llm import LlmParams, llm_judge, llm_prompt
from policies.judges.runners import judge_runner
from tests.judge_server import (
    answer,
    disconnect,
    fenced_ok,
    garbage_content,
    judge_server_fixture,  # noqa: F401 -- the judge_server fixture
    malformed_json,
    no_choices,
    ok,
    rate_limited,
    slow,
    status,
)

API_KEY = "sk-test-0123456789abcdefSECRET"
JUDGE_INPUT = JudgeInput(output="Paris is the capital of France.", input="What is the capital of France?")


class SleepRecorder:
    """Stands in for time.sleep: records the waits, waits for nothing."""

    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_params(server, **overrides) -> LlmParams:
    return LlmParams(base_url=server.url, model="judge-test", prompt_template="Judge this: {{output}}", **overrides)


def judge(server, *, api_key=API_KEY, judge_input=JUDGE_INPUT, allow_private=True, sleep=None, **overrides):
    sleep = sleep if sleep is not None else SleepRecorder()
    return llm_judge(make_params(server, **overrides), api_key, judge_input, allow_private=allow_private, sleep=sleep)


# Good answers -------------------------------------------------------------


def test_a_passing_answer_gives_a_pass_verdict_and_sends_a_chat_completion_request(judge_server):
    judge_server.script(ok(pass_=True, score=0.9, rationale="  Correct and concise.  ", model="judge-test-2024"))

    verdict = judge(judge_server, temperature=0.5, max_tokens=300)

    assert (verdict.result, verdict.score, verdict.rationale) == ("pass", 0.9, "Correct and concise.")
    assert (verdict.attempts, verdict.model) == (1, "judge-test-2024")
    assert (verdict.prompt_tokens, verdict.completion_tokens, verdict.cost) == (100, 20, None)
    assert verdict.latency_ms > 0
    [request] = judge_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json["model"] == "judge-test"
    assert request.json["response_format"] == {"type": "json_object"}
    assert (request.json["temperature"], request.json["max_tokens"]) == (0.5, 300)
    system, user = request.json["messages"]
    assert system["role"] == "system" and '"pass"' in system["content"]
    assert user == {"role": "user", "content": "Judge this: Paris is the capital of France."}


def test_a_failing_answer_gives_a_fail_verdict(judge_server):
    judge_server.script(ok(pass_=False, score=0.1, rationale="Wrong capital."))

    verdict = judge(judge_server)

    assert (verdict.result, verdict.score, verdict.rationale) == ("fail", 0.1, "Wrong capital.")


def test_without_a_key_or_json_mode_neither_is_sent(judge_server):
    judge(judge_server, api_key=None, json_mode=False)

    [request] = judge_server.requests
    assert "Authorization" not in request.headers
    assert "response_format" not in request.json


def test_the_model_defaults_to_the_configured_one_when_the_endpoint_names_none(judge_server):
    judge_server.script(ok(model=""))

    assert judge(judge_server).model == "judge-test"


@pytest.mark.parametrize("fence", ["```json\n{}\n```", "```\n{}\n```", "```JSON {} ```", "\n  ```json\n{}\n```\n"])
def test_an_answer_fenced_as_a_code_block_is_accepted(judge_server, fence):
    content = fence.replace("{}", json.dumps({"pass": False, "score": 0.25, "rationale": "Vague."}))
    judge_server.script(answer(content), fenced_ok(pass_=True, score=1))

    fenced, fenced_by_the_server_helper = judge(judge_server), judge(judge_server)

    assert (fenced.result, fenced.score, fenced.rationale, fenced.attempts) == ("fail", 0.25, "Vague.", 1)
    assert (fenced_by_the_server_helper.result, fenced_by_the_server_helper.score) == ("pass", 1.0)


def test_extra_keys_in_the_answer_are_ignored_and_an_integer_score_is_accepted(judge_server):
    judge_server.script(answer('{"pass": true, "score": 1, "rationale": "Fine.", "confidence": "high"}'))

    verdict = judge(judge_server)

    assert (verdict.result, verdict.score) == ("pass", 1.0)


# Tokens and cost ----------------------------------------------------------


def test_reported_cost_and_tokens_are_summed_over_every_attempt(judge_server):
    judge_server.script(garbage_content(usage={"prompt_tokens": 90, "completion_tokens": 7, "cost": 0.001}))
    judge_server.script(ok(usage={"prompt_tokens": 100, "completion_tokens": 20}, cost=0.002))

    verdict = judge(judge_server, input_cost_per_million=1000.0)  # a reported cost wins over the prices

    assert verdict.attempts == 2
    assert (verdict.prompt_tokens, verdict.completion_tokens) == (190, 27)
    assert verdict.cost == pytest.approx(0.003)


def test_cost_is_computed_from_the_configured_prices_when_the_endpoint_reports_none(judge_server):
    judge_server.script(ok(usage={"prompt_tokens": 1000, "completion_tokens": 200}))

    verdict = judge(judge_server, input_cost_per_million=2.5, output_cost_per_million=10.0)

    assert verdict.cost == pytest.approx(1000 * 2.5 / 1e6 + 200 * 10.0 / 1e6)


def test_without_usage_tokens_and_cost_are_unknown(judge_server):
    judge_server.script(ok(usage=None))

    verdict = judge(judge_server, input_cost_per_million=2.5, output_cost_per_million=10.0)

    assert (verdict.prompt_tokens, verdict.completion_tokens, verdict.cost) == (None, None, None)


# Retries ------------------------------------------------------------------


def test_a_malformed_answer_is_retried(judge_server):
    judge_server.script(malformed_json(), ok(pass_=True, score=0.8))
    sleep = SleepRecorder()

    verdict = judge(judge_server, sleep=sleep, backoff_seconds=1.0)

    assert (verdict.result, verdict.score, verdict.attempts) == ("pass", 0.8, 2)
    assert len(sleep.calls) == 1 and 0.5 <= sleep.calls[0] <= 1.0  # first backoff step, with jitter
    assert len(judge_server.requests) == 2


@pytest.mark.parametrize(
    "garbage",
    [
        malformed_json(),
        no_choices(),
        garbage_content(),
        garbage_content("I think it passes."),
        garbage_content("[1, 2]"),
        garbage_content(None),
        garbage_content('{"pass": "true", "score": 0.9, "rationale": "x"}'),  # a bool given as a string
        garbage_content('{"pass": true, "score": 1.5, "rationale": "x"}'),
        garbage_content('{"pass": true, "score": true, "rationale": "x"}'),
        garbage_content('{"pass": true, "score": NaN, "rationale": "x"}'),
        garbage_content('{"pass": true, "score": 0.5}'),
        status(200, "[]"),
    ],
    ids=[
        "body-not-json",
        "no-choices",
        "other-object",
        "prose",
        "json-array",
        "null-content",
        "pass-as-string",
        "score-above-1",
        "score-as-bool",
        "score-nan",
        "no-rationale",
        "body-is-array",
    ],
)
def test_an_endpoint_that_always_answers_garbage_gives_an_error_verdict_after_every_attempt(judge_server, garbage):
    judge_server.default = garbage
    sleep = SleepRecorder()

    verdict = judge(judge_server, sleep=sleep, max_retries=2, backoff_seconds=0.5)

    assert (verdict.result, verdict.score, verdict.attempts) == ("error", None, 3)
    assert "garbage answer" in verdict.rationale and verdict.rationale.endswith("after 3 attempts")
    assert len(judge_server.requests) == 3
    assert len(sleep.calls) == 2  # none after the last attempt
    assert 0.25 <= sleep.calls[0] <= 0.5 and 0.5 <= sleep.calls[1] <= 1.0  # exponential


def test_the_backoff_is_capped_at_sixty_seconds(judge_server):
    judge_server.default = status(503)
    sleep = SleepRecorder()

    verdict = judge(judge_server, sleep=sleep, max_retries=3, backoff_seconds=40.0, timeout_seconds=10)

    assert verdict.rationale.startswith("HTTP 503")
    assert all(seconds <= 60 for seconds in sleep.calls) and sleep.calls[-1] >= 30


def test_a_server_error_is_retried(judge_server):
    judge_server.script(status(500), status(502, body="Bad Gateway"), ok(pass_=False, score=0.3))

    verdict = judge(judge_server)

    assert (verdict.result, verdict.attempts) == ("fail", 3)


def test_a_dropped_connection_is_retried(judge_server):
    judge_server.script(disconnect(), ok())

    verdict = judge(judge_server)

    assert (verdict.result, verdict.attempts, len(judge_server.requests)) == ("pass", 2, 2)


def test_an_oversized_answer_is_not_read_to_the_end(judge_server):
    judge_server.default = status(200, "x" * 3_000_000)

    verdict = judge(judge_server, max_retries=0)

    assert (verdict.result, verdict.attempts) == ("error", 1)
    assert verdict.rationale == "answer larger than 2000000 bytes after 1 attempt"


def test_retry_after_is_honoured_and_capped(judge_server):
    judge_server.script(rate_limited(retry_after=7), rate_limited(retry_after=3600), rate_limited(retry_after=None))
    judge_server.script(status(503, headers={"Retry-After": "2"}), ok())
    sleep = SleepRecorder()

    verdict = judge(judge_server, sleep=sleep, max_retries=4, backoff_seconds=8.0, timeout_seconds=10)

    assert (verdict.result, verdict.attempts) == ("pass", 5)
    assert sleep.calls[:2] == [7.0, 60.0]
    assert 16 <= sleep.calls[2] <= 32  # no Retry-After: the third backoff step
    assert sleep.calls[3] == 2.0


def test_rate_limited_to_the_end_says_so(judge_server):
    judge_server.default = rate_limited(retry_after=0)
    sleep = SleepRecorder()

    verdict = judge(judge_server, sleep=sleep)

    assert (verdict.result, verdict.attempts) == ("error", 4)
    assert verdict.rationale == "HTTP 429 rate limited after 4 attempts"
    assert sleep.calls == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("code", "body", "rationale", "logged"),
    [
        (
            401,
            {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}},
            "HTTP 401 Unauthorized (not retried): check the API key",
            "Incorrect API key provided.",
        ),
        (
            404,
            {"error": {"message": "The model `judge-test` does not exist"}},
            "HTTP 404 Not Found (not retried): check base_url and model",
            "does not exist",
        ),
        (  # vLLM
            400,
            {"object": "error", "message": "max_tokens is too large"},
            "HTTP 400 Bad Request (not retried): check the model and the settings",
            "max_tokens is too large",
        ),
        (  # Ollama-style
            403,
            {"error": "forbidden for this project"},
            "HTTP 403 Forbidden (not retried): check the API key",
            "forbidden for this project",
        ),
        (418, "plain text   complaint\n" * 50, "HTTP 418 I'm a Teapot (not retried)", "plain text complaint plain"),
        (499, "nonstandard", "HTTP 499 (not retried)", "nonstandard"),
    ],
)
def test_a_client_error_is_not_retried_and_its_body_goes_to_the_log_not_the_verdict(
    judge_server, caplog, code, body, rationale, logged
):
    judge_server.default = status(code, body=body)
    sleep = SleepRecorder()
    caplog.set_level(logging.WARNING)

    verdict = judge(judge_server, sleep=sleep)

    assert (verdict.result, verdict.score, verdict.attempts) == ("error", None, 1)
    assert verdict.rationale == rationale  # every role sees it: the endpoint's words are not in it
    assert logged in caplog.text and len(caplog.text) < 1000  # an excerpt, not the whole body
    assert sleep.calls == [] and len(judge_server.requests) == 1


def test_a_server_error_body_is_not_echoed_in_the_verdict(judge_server):
    judge_server.default = status(500, body={"error": {"message": "root:x:0:0:root:/root:/bin/bash"}})

    verdict = judge(judge_server, max_retries=1)

    assert verdict.rationale == "HTTP 500 Internal Server Error after 2 attempts"


def test_a_redirect_is_not_followed(judge_server):
    judge_server.default = status(307, body="", headers={"Location": "http://169.254.169.254/latest/meta-data"})

    verdict = judge(judge_server)

    assert (verdict.result, verdict.attempts) == ("error", 1)
    assert verdict.rationale.startswith("HTTP 307") and len(judge_server.requests) == 1


def test_a_slow_endpoint_times_out_is_retried_and_gives_an_error_verdict(judge_server):
    judge_server.default = slow(5)
    started = time.monotonic()

    verdict = judge(judge_server, timeout_seconds=0.2, max_retries=1)

    assert time.monotonic() - started < 2
    assert (verdict.result, verdict.attempts) == ("error", 2)
    assert verdict.rationale == "timed out after 0.2 s after 2 attempts"
    assert len(judge_server.requests) == 2


def test_an_answer_within_the_timeout_after_one_timeout_succeeds(judge_server):
    judge_server.script(slow(5), slow(0.05, then=ok(score=0.7)))

    verdict = judge(judge_server, timeout_seconds=0.3)

    assert (verdict.result, verdict.score, verdict.attempts) == ("pass", 0.7, 2)


def test_an_endpoint_that_refuses_connections_gives_an_error_verdict():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = LlmParams(base_url=f"http://127.0.0.1:{port}/v1", model="m", prompt_template="{{output}}")

    verdict = llm_judge(params, API_KEY, JUDGE_INPUT, allow_private=True, sleep=SleepRecorder())

    assert (verdict.result, verdict.attempts) == ("error", 4)
    assert verdict.rationale.startswith("connection failed") and verdict.rationale.endswith("after 4 attempts")


def test_a_private_address_is_refused_before_any_request(judge_server):
    verdict = judge(judge_server, allow_private=False)

    assert (verdict.result, verdict.score, verdict.attempts) == ("error", None, 0)
    assert "refused" in verdict.rationale and "127.0.0.1" in verdict.rationale
    assert judge_server.requests == []


def test_a_name_resolving_to_the_shared_address_space_is_refused_before_any_connection(fake_dns, loopback_only):
    fake_dns.script("judge.test", ["100.64.0.1"])  # where some clouds serve instance metadata
    params = LlmParams(base_url="http://judge.test/v1", model="m", prompt_template="{{output}}")

    verdict = llm_judge(params, API_KEY, JUDGE_INPUT, allow_private=False, sleep=SleepRecorder())

    assert (verdict.result, verdict.attempts) == ("error", 0)
    assert verdict.rationale.startswith("judge endpoint refused") and "100.64.0.1" in verdict.rationale
    assert loopback_only.destinations == []


def test_an_unknown_name_gives_an_error_verdict(fake_dns, loopback_only):
    params = LlmParams(base_url="http://nowhere.test/v1", model="m", prompt_template="{{output}}")

    verdict = llm_judge(params, API_KEY, JUDGE_INPUT, allow_private=False, sleep=SleepRecorder())

    assert (verdict.result, verdict.attempts) == ("error", 0)
    assert verdict.rationale.startswith("judge endpoint cannot resolve nowhere.test")


def test_every_retry_connects_to_the_address_checked_once(judge_server, fake_dns, loopback_only):
    port = judge_server.url.split(":")[-1].split("/")[0]
    fake_dns.script("judge.test", ["127.0.0.1"], ["127.0.0.2"])  # a rebinding answer after the first
    judge_server.script(status(500), status(503))
    params = LlmParams(base_url=f"http://judge.test:{port}/v1", model="judge-test", prompt_template="{{output}}")

    verdict = llm_judge(params, API_KEY, JUDGE_INPUT, allow_private=True, sleep=SleepRecorder())

    assert (verdict.result, verdict.attempts) == ("pass", 3)
    assert fake_dns.calls == ["judge.test"]
    assert [request.headers["Host"] for request in judge_server.requests] == [f"judge.test:{port}"] * 3
    assert {destination[0] for destination in loopback_only.destinations} == {"127.0.0.1"}


def test_a_judge_saved_under_older_url_rules_gives_an_error_verdict_not_a_crash():
    params = {"base_url": "http://a..b/v1", "model": "m", "prompt_template": "{{output}}"}

    runner = judge_runner(judge_id=-1, version=1, kind="llm", params=params, api_key="")
    verdict = runner(JUDGE_INPUT)

    assert (verdict.result, verdict.attempts) == ("error", 0)
    assert "base_url" in verdict.rationale


# The prompt ---------------------------------------------------------------


def test_the_prompt_fills_every_placeholder():
    params = LlmParams(
        base_url="https://judge.example/v1",
        model="m",
        system_prompt="Be fair.",
        prompt_template=(
            "App: {{application}}\nAsked: {{input}}\nContext:\n{{context}}\nRubric: {{ rubric }}\n"
            'Meta: {{metadata}}\nAnswer: {{output}}\nReply like {"pass": true} or {{"pass": false}}.'
        ),
    )
    judge_input = JudgeInput(
        output="Use {{rubric}} wisely, {{output}}.",
        input=[{"role": "user", "content": "Héllo"}],
        context=("First passage.", "Second passage."),
        application="support-bot",
        metadata={"locale": "fr", "tier": 2},
        rubric={"name": "accuracy", "version": 3, "criteria": []},
    )

    system, user = llm_prompt(params, judge_input)

    assert system == {"role": "system", "content": "Be fair."}
    assert user["content"] == (
        "App: support-bot\n"
        'Asked: [{"role":"user","content":"Héllo"}]\n'
        "Context:\n[1] First passage.\n\n[2] Second passage.\n"
        'Rubric: {"name":"accuracy","version":3,"criteria":[]}\n'
        'Meta: {"locale":"fr","tier":2}\n'
        "Answer: Use {{rubric}} wisely, {{output}}.\n"  # the output's own braces are not expanded
        'Reply like {"pass": true} or {{"pass": false}}.'
    )


def test_a_text_input_is_sent_as_written_and_missing_parts_are_empty():
    params = LlmParams(
        base_url="https://judge.example/v1",
        model="m",
        system_prompt="",
        prompt_template="[{{input}}|{{context}}|{{rubric}}|{{metadata}}|{{output}}]",
    )

    assert llm_prompt(params, JudgeInput(output="out")) == [{"role": "user", "content": "[|||{}|out]"}]
    assert llm_prompt(params, JudgeInput(output="o", input="Say hi"))[0]["content"] == "[Say hi|||{}|o]"


def test_an_unknown_placeholder_is_rejected_by_name():
    with pytest.raises(ValidationError) as error:
        LlmParams(base_url="https://x.example/v1", model="m", prompt_template="{{output}} {{answer}} {{ Output }}")

    assert "unknown placeholder {{Output}}, {{answer}}" in str(error.value)


def test_the_output_placeholder_is_required():
    with pytest.raises(ValidationError, match=r"must contain \{\{output\}\}"):
        LlmParams(base_url="https://x.example/v1", model="m", prompt_template="Judge {{input}}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "ftp://x.example/v1"),
        ("base_url", "api.openai.com/v1"),
        ("base_url", "https://user:pass@x.example/v1"),
        ("base_url", "https://x.example/v1?api-version=1"),
        ("base_url", "https://x.example:99999/v1"),
        ("base_url", "http://127.0.0.1:8799\\@1.1.1.1/v1"),  # urllib.parse and urllib3 disagree on the host
        ("base_url", "https://key@x.example/v1"),
        ("base_url", "http://a..b/v1"),
        ("base_url", "http://2130706433/v1"),  # 127.0.0.1 to inet_aton
        ("model", ""),
        ("timeout_seconds", 0.01),
        ("timeout_seconds", "30"),  # strict: no strings for numbers
        ("max_retries", 11),
        ("max_retries", 2.0),
        ("backoff_seconds", 61),
        ("temperature", 2.5),
        ("max_tokens", 0),
        ("json_mode", "yes"),
        ("input_cost_per_million", -1),
        ("api_key", "sk-not-here"),  # the key is kept apart from the settings
    ],
)
def test_bad_settings_are_rejected(field, value):
    settings = {"base_url": "https://x.example/v1", "model": "m", "prompt_template": "{{output}}", field: value}

    with pytest.raises(ValidationError):
        LlmParams.model_validate(settings)


def test_settings_have_sensible_defaults_and_accept_json():
    params = LlmParams.model_validate_json(
        '{"base_url": "http://ollama:11434/v1/", "model": "llama3.1:8b", '
        '"prompt_template": "{{output}}", "timeout_seconds": 10}'
    )

    assert (params.timeout_seconds, params.max_retries, params.backoff_seconds) == (10.0, 3, 1.0)
    assert (params.temperature, params.max_tokens, params.json_mode) == (0.0, 512, True)
    assert '"pass"' in params.system_prompt and "rationale" in params.system_prompt


# The key never leaks -------------------------------------------------------


def test_the_api_key_never_leaks_from_an_endpoint_that_echoes_it(judge_server, caplog):
    def echo_headers(request_json):
        sent = judge_server.requests[-1].headers["Authorization"]
        return 401, {}, {"error": {"message": f"Invalid key. You sent: Authorization: {sent}"}}

    judge_server.default = echo_headers
    caplog.set_level(logging.DEBUG)

    verdict = judge(judge_server)

    assert verdict.rationale.startswith("HTTP 401") and "[redacted]" in caplog.text
    for text in (verdict.rationale, repr(verdict), caplog.text):
        assert API_KEY not in text and API_KEY[:12] not in text


@pytest.mark.parametrize("padding", [150, 180, 195, 199])
def test_the_api_key_is_redacted_before_the_excerpt_is_cut(judge_server, caplog, padding):
    judge_server.default = status(500, body={"error": {"message": "x" * padding + API_KEY}})
    caplog.set_level(logging.WARNING)

    verdict = judge(judge_server, max_retries=1)

    assert verdict.rationale.startswith("HTTP 500")
    for text in (verdict.rationale, caplog.text):
        assert API_KEY[:6] not in text


def test_the_api_key_never_leaks_from_a_garbage_answer_or_a_rationale(judge_server, caplog):
    judge_server.script(answer(f"not json {API_KEY}"), ok(rationale=f"The key is {API_KEY}."))
    caplog.set_level(logging.WARNING)

    verdict = judge(judge_server)

    assert verdict.rationale == "The key is [redacted]."
    assert API_KEY not in caplog.text and "attempt 1 of 4 failed" in caplog.text


def test_a_key_that_cannot_be_sent_in_a_header_gives_an_error_without_quoting_it(judge_server):
    bad_key = "sk-abc123\r\nX-Injected: 1"

    verdict = judge(judge_server, api_key=bad_key)

    assert (verdict.result, verdict.attempts) == ("error", 0)
    assert "sk-abc123" not in verdict.rationale and judge_server.requests == []
