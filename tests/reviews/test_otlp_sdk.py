"""The real OpenTelemetry SDK and its OTLP/HTTP exporter (both pinned in requirements-dev.txt) send
GenAI spans to a live server on 127.0.0.1, configured as the README shows: the endpoint
``/api/otlp`` and the service key as a header, through the exporter's environment variables."""

import json

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from reviews.models import Output
from tests.conftest import make_client
from tests.factories import TenantFactory


@pytest.fixture
def exporter_env(live_server, transactional_db, monkeypatch):
    tenant = TenantFactory()
    key = make_client(tenant, "service").raw_key
    base_url = live_server.url.replace("localhost", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{base_url}/api/otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {key}")
    return tenant


def run_agent(provider: TracerProvider, question: str, answer: str) -> tuple[str, str]:
    tracer = provider.get_tracer("my-agent")
    with tracer.start_as_current_span(
        "invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}
    ) as agent:
        with tracer.start_as_current_span(
            "execute_tool search",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        ) as tool:
            tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"q": question}))
            tool.set_status(Status(StatusCode.ERROR, "search backend down"))
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 11,
                    "gen_ai.usage.output_tokens": 7,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
                    ),
                }
            )
        context = agent.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_sdk_exporter_delivers_agent_runs_as_outputs(exporter_env, monkeypatch, compression):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "helpdesk"}))
    exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))

    first = run_agent(provider, "Where is my parcel?", "It arrives tomorrow.")
    second = run_agent(provider, "Can I return it?", "Yes, within 30 days.")
    assert provider.force_flush(10_000)
    provider.shutdown()

    outputs = {row.external_id: row for row in Output.objects.for_tenant(exporter_env)}
    assert set(outputs) == {f"otel:{trace_id}:{span_id}" for trace_id, span_id in (first, second)}
    output = outputs[f"otel:{first[0]}:{first[1]}"]
    assert output.application == "helpdesk"
    assert output.input == [{"role": "user", "content": "Where is my parcel?"}]
    assert output.output == "It arrives tomorrow."
    assert output.model == "gpt-4o-mini" and output.metadata["tool_errors"] == 1
    assert [step["type"] for step in output.trace] == ["tool", "llm"]
    assert output.trace[0]["error"] == "search backend down"

    # The same spans exported again (a retry after a lost answer): no second output.
    spans = kept.get_finished_spans()
    assert len(spans) == 6
    assert OTLPSpanExporter().export(spans) == SpanExportResult.SUCCESS
    assert Output.objects.for_tenant(exporter_env).count() == 2
