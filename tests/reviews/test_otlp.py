"""POST /api/otlp/v1/traces: OpenTelemetry GenAI spans in protobuf and JSON, gzip, idempotency,
bad bodies, tenancy, partial success, and the real SDK's OTLP/HTTP exporter against a live server."""

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish
from reviews.models import Output, ReviewTask
from reviews.trace import trace_steps
from tests.conftest import make_client
from tests.reviews.otlp_spans import TRACE, agent_run, export, otlp_json, span

URL = "/api/otlp/v1/traces"
EXTERNAL_ID = f"otel:{TRACE.hex()}:0000000000000002"


def send_protobuf(client, request, **headers):
    return client.generic("POST", URL, request.SerializeToString(), content_type="application/x-protobuf", **headers)


def send_json(client, document):
    return client.generic("POST", URL, json.dumps(document), content_type="application/json")


def answer(response) -> ExportTraceServiceResponse:
    assert response["Content-Type"] == "application/x-protobuf"
    return ExportTraceServiceResponse.FromString(response.content)


def test_an_agent_run_in_protobuf_becomes_one_output_with_its_trace(tenant, service_client):
    response = send_protobuf(service_client, export(agent_run()))

    assert response.status_code == 200, response.content
    assert not answer(response).HasField("partial_success")
    output = Output.objects.for_tenant(tenant).get()
    assert (output.external_id, output.application, output.session_id) == (EXTERNAL_ID, "support-bot", "conv-9")
    assert output.input == [
        {"role": "system", "content": "You are a bank assistant."},
        {"role": "user", "content": "What is my balance?"},
    ]
    assert output.output == "Your balance is 42 EUR."
    assert output.model == "gpt-4o-2024-08-06"
    assert output.metadata["input_tokens"] == 120 and output.metadata["output_tokens"] == 30
    assert output.metadata["cost"] == pytest.approx(0.0021) and output.metadata["latency_ms"] == 900.0
    assert output.metadata["tool_errors"] == 1 and output.metadata["agent"] == "banker"
    assert output.policy_version == 1 and output.risk_tier  # classified by the tenant's policy
    # The steps in the shapes the workbench renders: the retrieval's passage, the tool call, the model call.
    steps = trace_steps(output.trace)
    assert [step["kind"] for step in steps] == ["retrieval", "tool", "llm"]
    assert steps[0]["query"] == "balance policy" and steps[0]["passages"][0]["text"] == "Balances are shown in EUR."
    assert steps[1]["tool"] == "get_balance" and '"account": "A-1"' in steps[1]["arguments"]
    assert steps[1]["error"] == "timeout on first try" and steps[1]["latency_ms"] == 50.0
    assert steps[2]["tokens"] == 150 and steps[2]["messages"][-1]["content"] == "Your balance is 42 EUR."


def test_the_received_event_names_the_key_that_sent_the_spans(tenant, service_client):
    from tenants.models import AuditEvent

    assert send_protobuf(service_client, export(agent_run())).status_code == 200
    output = Output.objects.for_tenant(tenant).get()
    event = AuditEvent.objects.for_tenant(tenant).get(kind="output.received")
    assert event.data["ids"] == [str(output.pk)]
    assert (event.actor_key_id, event.actor_role) == (service_client.api_key.pk, "service")


def test_the_same_spans_twice_make_no_second_output(tenant, service_client):
    first = send_protobuf(service_client, export(agent_run()))
    again = send_protobuf(service_client, export(agent_run()))

    assert first.status_code == again.status_code == 200
    assert not answer(again).HasField("partial_success")
    assert Output.objects.for_tenant(tenant).count() == 1


def test_json_gets_a_json_answer_and_the_same_output(tenant, service_client):
    response = send_json(service_client, otlp_json(export(agent_run())))

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json" and response.json() == {}
    output = Output.objects.for_tenant(tenant).get()
    assert output.external_id == EXTERNAL_ID and output.output == "Your balance is 42 EUR."
    # Protobuf and JSON of the same spans are the same submission: a repeat.
    assert not answer(send_protobuf(service_client, export(agent_run()))).HasField("partial_success")
    assert Output.objects.for_tenant(tenant).count() == 1


def test_gzip_is_accepted(tenant, service_client):
    body = gzip.compress(export(agent_run()).SerializeToString())
    response = service_client.generic(
        "POST", URL, body, content_type="application/x-protobuf", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 200, response.content
    assert Output.objects.for_tenant(tenant).count() == 1


def test_messages_as_events_and_as_json_attributes(tenant, service_client):
    trace = bytes.fromhex("11" * 16)
    from_events = span(7, "chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, trace=trace)
    event = from_events.events.add(name="gen_ai.user.message")
    event.attributes.add(key="content").value.string_value = "Hi there"
    choice = from_events.events.add(name="gen_ai.choice")
    choice.attributes.add(key="message").value.string_value = json.dumps({"role": "assistant", "content": "Hello!"})
    current = span(
        8,
        "chat",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Q?"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "A."}]}]),
        },
        trace=trace,
    )

    assert send_protobuf(service_client, export([from_events, current])).status_code == 200

    stored = {row.external_id[-1]: row for row in Output.objects.for_tenant(tenant)}
    assert stored["7"].input == [{"role": "user", "content": "Hi there"}] and stored["7"].output == "Hello!"
    assert stored["8"].input == [{"role": "user", "content": "Q?"}] and stored["8"].output == "A."


def test_rejected_spans_are_named_in_partial_success_and_the_rest_is_stored(tenant, service_client):
    good = export(agent_run())
    bad = export(agent_run(trace=bytes.fromhex("22" * 16)), service="not a valid name!")
    good.resource_spans.extend(bad.resource_spans)

    response = answer(send_protobuf(service_client, good))

    assert response.partial_success.rejected_spans == 4  # the agent span and its three children
    assert f"span {'22' * 16}:0000000000000002: application" in response.partial_success.error_message
    assert list(Output.objects.for_tenant(tenant).values_list("external_id", flat=True)) == [EXTERNAL_ID]


def test_spans_sent_again_with_other_content_are_rejected_not_updated(tenant, service_client):
    send_protobuf(service_client, export(agent_run()))
    response = answer(send_protobuf(service_client, export(agent_run(answer="Something else."))))

    assert response.partial_success.rejected_spans == 4
    assert "received before with different content" in response.partial_success.error_message
    assert Output.objects.for_tenant(tenant).get().output == "Your balance is 42 EUR."


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/x-protobuf", b"\xff\xff\xff not protobuf", "not an OTLP ExportTraceServiceRequest in protobuf"),
        ("application/json", b"{not json", "Malformed JSON"),
        ("application/json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}', "traceId"),
        ("application/json", b'{"resourceSpans": "many"}', "resourceSpans"),
    ],
)
def test_a_bad_body_is_a_clear_400_and_writes_nothing(tenant, service_client, content_type, body, message):
    response = service_client.generic("POST", URL, body, content_type=content_type)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error" and message in json.dumps(response.json())
    assert not Output.objects.for_tenant(tenant).exists()


def test_bad_gzip_and_other_media_types_are_refused(service_client):
    bad_gzip = service_client.generic(
        "POST", URL, b"not gzip", content_type="application/x-protobuf", HTTP_CONTENT_ENCODING="gzip"
    )
    brotli = service_client.generic(
        "POST", URL, b"x", content_type="application/x-protobuf", HTTP_CONTENT_ENCODING="br"
    )
    text = service_client.generic("POST", URL, b"x", content_type="text/plain")

    assert bad_gzip.status_code == 400 and "gzip" in bad_gzip.json()["message"]
    assert brotli.status_code == 400 and "br" in brotli.json()["message"]
    assert text.status_code == 415


def test_another_tenants_key_writes_into_its_own_tenant_only(tenant, other_tenant, service_client):
    send_protobuf(service_client, export(agent_run()))
    outsider = make_client(other_tenant, "service")

    response = send_protobuf(outsider, export(agent_run()))

    assert response.status_code == 200 and not answer(response).HasField("partial_success")
    assert Output.objects.for_tenant(tenant).count() == 1
    assert Output.objects.for_tenant(other_tenant).get().external_id == EXTERNAL_ID


def test_the_tenants_policy_applies(tenant, service_client):
    rules = [{"name": "bank", "tier": "critical", "match": {"application": "bank-bot"}}]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "rules": rules})

    send_protobuf(service_client, export(agent_run(), service="bank-bot"))

    output = Output.objects.for_tenant(tenant).get()
    assert (output.risk_tier, output.delivery, output.status) == ("critical", "hold", "pending_review")
    assert ReviewTask.objects.for_tenant(tenant).filter(output=output).count() == 2


def test_a_request_is_one_batch_whatever_its_number_of_spans(tenant, service_client, django_assert_max_num_queries):
    many = export([item for number in range(30) for item in agent_run(trace=number.to_bytes(16, "big"))])
    send_protobuf(service_client, export(agent_run(trace=bytes(16))))  # warm the caches: policy, key

    with django_assert_max_num_queries(12):
        response = send_protobuf(service_client, many)

    assert response.status_code == 200
    assert Output.objects.for_tenant(tenant).count() == 30


def test_roles_that_may_not_submit_are_refused(tenant):
    for role in ("reviewer", "auditor"):
        assert send_protobuf(make_client(tenant, role), export(agent_run())).status_code == 403
    assert not Output.objects.for_tenant(tenant).exists()
