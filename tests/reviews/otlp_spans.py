"""OTLP trace exports built with the official message classes, as instrumented applications send them."""

import base64

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
T0 = 1_764_000_000_000_000_000  # ns


def value(raw) -> AnyValue:
    if isinstance(raw, bool):
        return AnyValue(bool_value=raw)
    if isinstance(raw, int):
        return AnyValue(int_value=raw)
    if isinstance(raw, float):
        return AnyValue(double_value=raw)
    if isinstance(raw, list):
        result = AnyValue()
        result.array_value.values.extend(value(item) for item in raw)
        return result
    return AnyValue(string_value=str(raw))


def attributes(mapping: dict) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(raw)) for key, raw in mapping.items()]


def span(
    span_id: int, name: str, attrs: dict, *, parent: int | None = None, start_ms=0, end_ms=100, trace=TRACE, error=""
):
    made = Span(
        trace_id=trace,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + start_ms * 1_000_000,
        end_time_unix_nano=T0 + end_ms * 1_000_000,
        attributes=attributes(attrs),
    )
    if error:
        made.status.code = Status.STATUS_CODE_ERROR
        made.status.message = error
    return made


def export(spans: list[Span], service: str = "support-bot", resource: dict | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(attributes({"service.name": service, **(resource or {})}))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai"
    scope.spans.extend(spans)
    return request


def agent_run(trace=TRACE, question="What is my balance?", answer="Your balance is 42 EUR.") -> list[Span]:
    """An HTTP span, beneath it an agent that retrieves, calls a tool (which fails once) and the model."""
    return [
        span(1, "POST /chat", {"http.request.method": "POST"}, end_ms=1000, trace=trace),
        span(
            2,
            "invoke_agent banker",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "banker",
                "gen_ai.conversation.id": "conv-9",
            },
            parent=1,
            start_ms=10,
            end_ms=910,
            trace=trace,
        ),
        span(
            3,
            "retrieve",
            {
                "openinference.span.kind": "RETRIEVER",
                "input.value": "balance policy",
                "retrieval.documents.0.document.content": "Balances are shown in EUR.",
                "retrieval.documents.0.document.id": "kb-7",
            },
            parent=2,
            start_ms=20,
            end_ms=60,
            trace=trace,
        ),
        span(
            4,
            "execute_tool get_balance",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_balance",
                "gen_ai.tool.call.arguments": '{"account": "A-1"}',
                "gen_ai.tool.call.result": '{"balance": 42}',
            },
            parent=2,
            start_ms=70,
            end_ms=120,
            trace=trace,
            error="timeout on first try",
        ),
        span(
            5,
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cost": 0.0021,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "You are a bank assistant.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": question,
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": answer,
            },
            parent=2,
            start_ms=130,
            end_ms=900,
            trace=trace,
        ),
    ]


def otlp_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON: protobuf's JSON mapping, with trace and span ids in hex as OTLP requires."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in item:
                        item[name] = base64.b64decode(item[name]).hex()
    return document
