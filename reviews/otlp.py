"""OpenTelemetry GenAI traces turned into outputs: pure functions over the official OTLP messages.

A request (``ExportTraceServiceRequest``, from ``opentelemetry-proto``) holds spans of any
number of traces. Each **root** GenAI span becomes one output: an LLM span (a chat or
completion call) or an agent span, or a chain/workflow span with an LLM call beneath it,
that has no such span above it in the request. Its descendants become the output's trace
steps, in the order they started, in the shapes ``reviews/trace.py`` renders (``llm`` with
its messages, ``retrieval`` with its documents, ``tool`` with arguments and result). Spans
that are neither GenAI spans nor beneath one (HTTP, database) are ignored.

Attributes are read as the OpenTelemetry GenAI semantic conventions name them (current and
earlier versions), and as OpenLLMetry (``traceloop.*``, ``gen_ai.prompt.N.*``) and
OpenInference (``openinference.span.kind``, ``llm.*``, ``input.value``, ``retrieval.documents``)
emit them:

- input: the root's prompt messages (``gen_ai.input.messages``, ``gen_ai.prompt.N.*``,
  ``llm.input_messages.N.*``, ``gen_ai.*.message`` events), else the root's ``input.value`` /
  ``traceloop.entity.input``, else the first LLM call's prompt;
- output: the root's completion, else the last LLM call's (the final answer);
- ``external_id`` ``otel:<trace id>:<span id>`` (hex), so the same spans sent again are a repeat;
- ``application``: the span's or resource's ``hitl.application``, else the resource's
  ``service.name``; ``session_id``: ``gen_ai.conversation.id``, ``session.id`` or ``hitl.session_id``;
- metadata: ``source: otlp``, the ids, service name, operation, provider, model, tokens and
  cost (``gen_ai.usage.cost``, ``llm.cost.total``) summed over the LLM calls, latency (from
  the span times) and any ``hitl.metadata.<key>`` attribute of the root as ``<key>``.
"""

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from hitl.errors import DomainValidationError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_SAFE_INTEGER = 2**53 - 1  # stored JSON numbers are read back exactly (hitl/json_limits.py)

LLM_OPERATIONS = frozenset({"chat", "text_completion", "completion", "generate_content"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})
TOOL_OPERATIONS = frozenset({"execute_tool"})
RETRIEVAL_OPERATIONS = frozenset({"retrieval", "retrieve", "search"})
VECTOR_DATABASES = frozenset({"chroma", "pinecone", "qdrant", "weaviate", "milvus", "lancedb", "marqo", "pgvector"})


class OtlpBodyError(DomainValidationError):
    """The body is not an OTLP trace export (400, naming what is wrong)."""

    def __init__(self, message: str):
        super().__init__(f"body: {message}", fields={"body": [message]})


# Bodies ------------------------------------------------------------------------------------


def body_decompressed(body: bytes, encoding: str, *, limit: int) -> bytes:
    """The body without its ``Content-Encoding`` (gzip, or none), never more than ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise OtlpBodyError(f"Content-Encoding {encoding} is not supported (send gzip or none).")
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise OtlpBodyError(f"not valid gzip: {error}.") from None
    if len(raw) > limit or inflater.unconsumed_tail:
        raise OtlpBodyError(f"decompressed, the body exceeds the limit of {limit} bytes.")
    return raw


def request_from_protobuf(raw: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(raw)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise OtlpBodyError(f"not an OTLP ExportTraceServiceRequest in protobuf ({error}).") from None


def request_from_json(document: dict) -> ExportTraceServiceRequest:
    """From OTLP/JSON already validated (``reviews.schemas.OtlpTraceRequest``, dumped): trace and
    span ids are hex there, base64 in protobuf's own JSON mapping."""
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for name in ("traceId", "spanId", "parentSpanId"):
                    if span.get(name):
                        span[name] = _hex_to_base64(span[name])
    try:
        return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise OtlpBodyError(f"not an OTLP ExportTraceServiceRequest in JSON ({error}).") from None


def _hex_to_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except (ValueError, binascii.Error):
        raise OtlpBodyError(f"{value!r} is not a hex trace or span id.") from None


def response_body(rejected: int, message: str, content_type: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding; ``partial_success`` only when
    spans were rejected (OTLP: an empty one means full success)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if content_type == PROTOBUF:
        return response.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(response))  # the shape of reviews.schemas.OtlpTraceResponse


# Spans to outputs ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    span: Span
    attributes: dict[str, Any]
    resource: dict[str, Any]
    kind: str  # llm, agent, chain, tool, retrieval, embedding, other
    children: list["_Node"] = field(default_factory=list)
    parent: "_Node | None" = None
    start: int = 0  # the span's times and status, read from the message once
    end: int = 0
    error: str = ""
    messages: tuple[list[dict], list[dict]] | None = None  # prompt and completion, read once
    indexed: dict[str, dict[int, dict[str, Any]]] | None = None  # "<prefix>.<n>.<rest>" attributes, read once

    @property
    def key(self) -> str:
        return f"{self.span.trace_id.hex()}:{self.span.span_id.hex()}"


@dataclass(frozen=True, slots=True)
class Converted:
    """A root span made into a submission (a dict for ``OutputSubmission``), and how many spans it covers."""

    span_key: str  # trace id:span id, hex
    submission: dict
    spans: int


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return value.string_value  # a NUL is replaced in the finished submission (``_convert``)
    if which == "int_value":
        number = value.int_value
        return number if abs(number) <= MAX_SAFE_INTEGER else str(number)
    if which == "double_value":
        number = value.double_value
        return number if number == number and abs(number) != float("inf") else str(number)
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return value.bytes_value.hex()


def _attributes(key_values) -> dict[str, Any]:
    found = {}
    for item in key_values:
        value = item.value
        if value.WhichOneof("value") == "string_value":  # most are: the fast path
            found[item.key] = value.string_value
        else:
            found[item.key] = any_value(value)
    return found


def _kind(attributes: dict) -> str:
    operation = str(attributes.get("gen_ai.operation.name") or "").lower()
    openinference = str(attributes.get("openinference.span.kind") or "").upper()
    traceloop = str(attributes.get("traceloop.span.kind") or "").lower()
    if operation in AGENT_OPERATIONS or openinference == "AGENT" or traceloop == "agent":
        return "agent"
    if operation in TOOL_OPERATIONS or openinference == "TOOL" or traceloop == "tool":
        return "tool"
    if (
        operation in RETRIEVAL_OPERATIONS
        or openinference == "RETRIEVER"
        or str(attributes.get("db.system") or attributes.get("db.system.name") or "").lower() in VECTOR_DATABASES
    ):
        return "retrieval"
    if operation == "embeddings" or openinference == "EMBEDDING":
        return "embedding"
    if (
        operation in LLM_OPERATIONS
        or openinference == "LLM"
        or "llm.request.type" in attributes
        or (not operation and ("gen_ai.request.model" in attributes or "gen_ai.system" in attributes))
    ):
        return "llm"
    if openinference == "CHAIN" or traceloop in ("workflow", "task"):
        return "chain"
    return "other"


def _subtree_has_llm(node: _Node) -> bool:
    stack = list(node.children)
    while stack:
        item = stack.pop()
        if item.kind == "llm":
            return True
        stack.extend(item.children)
    return False


def _is_candidate(node: _Node) -> bool:
    return node.kind in ("llm", "agent") or (node.kind == "chain" and _subtree_has_llm(node))


def spans_to_submissions(request: ExportTraceServiceRequest) -> list[Converted]:
    """One submission per root GenAI span of the request (see the module's docstring)."""
    nodes: dict[tuple[bytes, bytes], _Node] = {}
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = _attributes(span.attributes)
                nodes[(span.trace_id, span.span_id)] = _Node(
                    span,
                    attributes,
                    resource,
                    _kind(attributes),
                    start=span.start_time_unix_nano,
                    end=span.end_time_unix_nano,
                    error=_error(span),
                )
    for node in nodes.values():
        parent = nodes.get((node.span.trace_id, node.span.parent_span_id)) if node.span.parent_span_id else None
        if parent is not None and parent is not node:
            node.parent = parent
            parent.children.append(node)
    converted = []
    for node in nodes.values():
        if not _is_candidate(node):
            continue
        ancestor, seen = node.parent, {id(node)}
        while ancestor is not None and id(ancestor) not in seen and not _is_candidate(ancestor):
            seen.add(id(ancestor))
            ancestor = ancestor.parent
        if ancestor is None or id(ancestor) in seen:  # the top-most GenAI span of its chain
            converted.append(_convert(node))
    converted.sort(key=lambda item: item.span_key)
    return converted


def _descendants(root: _Node) -> list[_Node]:
    found, stack, seen = [], list(root.children), {id(root)}
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        stack.extend(node.children)
    found.sort(key=lambda node: (node.start, node.span.span_id))  # deterministic: a repeat hashes alike
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _message_content(message: dict) -> str:
    """A message's text: ``content``, or the text ``parts`` of the current conventions."""
    if "content" in message and message["content"] not in (None, ""):
        return _text(message["content"])
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = []
        for part in parts:
            if isinstance(part, dict):
                if part.get("type") in (None, "text") and "content" in part:
                    texts.append(_text(part["content"]))
                elif part.get("type") == "tool_call":
                    texts.append(_text({"tool_call": part.get("name"), "arguments": part.get("arguments")}))
                elif part.get("type") == "tool_call_response":
                    texts.append(_text(part.get("response", part.get("result"))))
        return "\n".join(texts)
    return ""


def _json_messages(value: Any) -> list[dict] | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    messages = [
        {"role": str(item.get("role", "")), "content": _message_content(item)}
        for item in value
        if isinstance(item, dict)
    ]
    return messages or None


_INDEXED_PREFIXES = ("gen_ai.prompt", "gen_ai.completion", "llm.input_messages", "llm.output_messages")


def _indexed(node: _Node) -> dict[str, dict[int, dict[str, Any]]]:
    """Every ``<prefix>.<n>.<rest>`` attribute of the message prefixes, grouped, in one pass."""
    if node.indexed is None:
        found: dict[str, dict[int, dict[str, Any]]] = {}
        for key, value in node.attributes.items():
            if not key.startswith(
                ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.")
            ):
                continue
            for prefix in _INDEXED_PREFIXES:
                if key.startswith(prefix + "."):
                    index, _, rest = key[len(prefix) + 1 :].partition(".")
                    if index.isdigit():
                        found.setdefault(prefix, {}).setdefault(int(index), {})[rest] = value
                    break
        node.indexed = found
    return node.indexed


def _indexed_messages(node: _Node, prefix: str, role_key: str, content_key: str) -> list[dict] | None:
    """``<prefix>.<n>.<role_key>`` and ``<prefix>.<n>.<content_key>`` attributes, by n."""
    found = _indexed(node).get(prefix)
    if not found:
        return None
    messages = [
        {"role": _text(found[index].get(role_key, "")), "content": _text(found[index].get(content_key, ""))}
        for index in sorted(found)
        if role_key in found[index] or content_key in found[index]
    ]
    return messages or None


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_messages(span: Span) -> tuple[list[dict], list[dict]]:
    """Prompt and completion messages sent as span events (earlier GenAI conventions)."""
    prompt, completion = [], []
    for event in span.events:
        attributes = _attributes(event.attributes)
        if event.name in _EVENT_ROLES:
            content = attributes.get("content", attributes.get("gen_ai.event.content", ""))
            message = _json_messages(content) if isinstance(content, str) and content.startswith("{") else None
            prompt.append(message[0] if message else {"role": _EVENT_ROLES[event.name], "content": _text(content)})
        elif event.name == "gen_ai.choice":
            message = attributes.get("message")
            parsed = _json_messages(message) if message is not None else None
            completion.append(
                parsed[0] if parsed else {"role": "assistant", "content": _text(message or attributes.get("content"))}
            )
        elif event.name == "gen_ai.content.prompt":
            prompt += _json_messages(attributes.get("gen_ai.prompt")) or []
        elif event.name == "gen_ai.content.completion":
            completion += _json_messages(attributes.get("gen_ai.completion")) or []
    return prompt, completion


def _prompt_and_completion(node: _Node) -> tuple[list[dict], list[dict]]:
    if node.messages is None:
        node.messages = _read_messages(node)
    return node.messages


def _read_messages(node: _Node) -> tuple[list[dict], list[dict]]:
    attributes = node.attributes
    prompt = (
        _json_messages(attributes.get("gen_ai.input.messages"))
        or _indexed_messages(node, "gen_ai.prompt", "role", "content")
        or _indexed_messages(node, "llm.input_messages", "message.role", "message.content")
    )
    completion = (
        _json_messages(attributes.get("gen_ai.output.messages"))
        or _indexed_messages(node, "gen_ai.completion", "role", "content")
        or _indexed_messages(node, "llm.output_messages", "message.role", "message.content")
    )
    if prompt is None or completion is None:
        event_prompt, event_completion = _event_messages(node.span)
        prompt = prompt or event_prompt
        completion = completion or event_completion
    system = attributes.get("gen_ai.system_instructions")
    if system and prompt is not None:
        instructions = _json_messages(system)
        prompt = [
            {"role": "system", "content": instructions[0]["content"] if instructions else _text(system)},
            *prompt,
        ]
    return prompt or [], completion or []


def _number(attributes: dict, *keys: str) -> float | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _tokens(attributes: dict) -> tuple[float | None, float | None]:
    return (
        _number(attributes, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
        _number(
            attributes, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"
        ),
    )


def _cost(attributes: dict) -> float | None:
    return _number(attributes, "gen_ai.usage.cost", "llm.cost.total", "gen_ai.cost", "llm.usage.cost")


def _model(attributes: dict) -> str:
    return _text(
        attributes.get("gen_ai.response.model")
        or attributes.get("gen_ai.request.model")
        or attributes.get("llm.model_name")
        or ""
    )


def _latency_ms(node: _Node) -> float | None:
    if not node.start or node.end < node.start:
        return None
    return round((node.end - node.start) / 1e6, 3)


def _error(span: Span) -> str:
    if span.status.code == Status.STATUS_CODE_ERROR:
        return span.status.message or "error"
    return ""


def _documents(attributes: dict) -> list[dict]:
    found: dict[int, dict] = {}
    for key, value in attributes.items():
        if not key.startswith("retrieval.documents."):
            continue
        index, _, rest = key[len("retrieval.documents.") :].partition(".")
        if index.isdigit() and rest in ("document.content", "document.id", "document.score"):
            found.setdefault(int(index), {})[rest.split(".")[1]] = value
    documents = [
        {"content": _text(found[index].get("content", "")), "source": _text(found[index].get("id", ""))}
        | ({"score": found[index]["score"]} if isinstance(found[index].get("score"), int | float) else {})
        for index in sorted(found)
    ]
    if documents:
        return documents
    for key in ("gen_ai.retrieval.documents", "db.query.result", "retrieval.documents", "output.value"):
        value = attributes.get(key)
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                value = [value]
        if isinstance(value, list) and value:
            return [
                {"content": _text(item.get("content", item.get("text", item)))}
                if isinstance(item, dict)
                # a list of strings
                else {"content": _text(item)}
                for item in value
            ]
    return []


def _step(node: _Node) -> dict:
    """One descendant span as a trace step (``reviews/trace.py`` renders it)."""
    span, attributes = node.span, node.attributes
    step: dict[str, Any] = {
        "type": node.kind,
        "name": span.name,
        "span_id": span.span_id.hex(),
        "latency_ms": _latency_ms(node),
    }
    if span.parent_span_id:
        step["parent_span_id"] = span.parent_span_id.hex()
    if node.error:
        step["error"] = node.error
    if node.kind == "llm":
        prompt, completion = _prompt_and_completion(node)
        input_tokens, output_tokens = _tokens(attributes)
        step.update(model=_model(attributes), messages=prompt + completion)
        if input_tokens is not None:
            step["input_tokens"] = input_tokens
        if output_tokens is not None:
            step["output_tokens"] = output_tokens
        cost = _cost(attributes)
        if cost is not None:
            step["cost"] = cost
    elif node.kind == "retrieval":
        query = (
            attributes.get("gen_ai.retrieval.query.text")
            or attributes.get("input.value")
            or attributes.get("db.query.text")
        )
        if query is not None:
            step["query"] = _text(query)
        step["documents"] = _documents(attributes)
    elif node.kind == "tool":
        step["tool"] = _text(attributes.get("gen_ai.tool.name") or attributes.get("tool.name") or span.name)
        arguments = (
            attributes.get("gen_ai.tool.call.arguments")
            or attributes.get("tool.parameters")
            or attributes.get("input.value")
            or attributes.get("traceloop.entity.input")
        )
        result = (
            attributes.get("gen_ai.tool.call.result")
            or attributes.get("output.value")
            or attributes.get("traceloop.entity.output")
        )
        step["arguments"] = _maybe_json(arguments)
        step["result"] = _maybe_json(result)
    else:
        for key in ("input.value", "traceloop.entity.input", "output.value", "traceloop.entity.output"):
            if key in attributes:
                step[key.replace("traceloop.entity.", "").replace(".value", "")] = _maybe_json(attributes[key])
    return {key: value for key, value in step.items() if value is not None}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _entity_text(attributes: dict, *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        parsed = _maybe_json(value)
        messages = _json_messages(parsed) if isinstance(parsed, list | dict) else None
        if messages and isinstance(parsed, list):
            return messages  # type: ignore[return-value]
        return _text(value)
    return None


def _convert(root: _Node) -> Converted:
    span, attributes, resource = root.span, root.attributes, root.resource
    descendants = _descendants(root)
    llm_calls = [node for node in ([root] if root.kind == "llm" else []) + descendants if node.kind == "llm"]

    prompt, completion = _prompt_and_completion(root) if root.kind == "llm" else ([], [])
    input_value: Any = prompt or _entity_text(
        attributes, "gen_ai.input.messages", "input.value", "traceloop.entity.input"
    )
    if not input_value and llm_calls:
        input_value = _prompt_and_completion(llm_calls[0])[0]
    output_text = "\n".join(message["content"] for message in completion if message["content"])
    if not output_text:
        final = _entity_text(attributes, "gen_ai.output.messages", "output.value", "traceloop.entity.output")
        if isinstance(final, list):
            final = "\n".join(message["content"] for message in final if message.get("role") != "user")
        output_text = final or ""
    if not output_text and llm_calls:
        last = max(llm_calls, key=lambda node: node.end)
        output_text = "\n".join(message["content"] for message in _prompt_and_completion(last)[1] if message["content"])

    steps = [_step(node) for node in descendants]
    if root.kind == "llm" and descendants:
        steps.insert(0, _step(root))  # the call itself, with its tokens, among the steps beneath it
    elif root.kind == "llm":
        steps = [_step(root)]

    input_tokens = output_tokens = cost = None
    for node in llm_calls:
        tokens_in, tokens_out = _tokens(node.attributes)
        node_cost = _cost(node.attributes)
        if tokens_in is not None:
            input_tokens = (input_tokens or 0) + tokens_in
        if tokens_out is not None:
            output_tokens = (output_tokens or 0) + tokens_out
        if node_cost is not None:
            cost = (cost or 0) + node_cost
    if cost is None:
        cost = _cost(attributes)

    model = _model(attributes) or next(
        (_model(node.attributes) for node in reversed(llm_calls) if _model(node.attributes)), ""
    )
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    metadata: dict[str, Any] = {
        "source": "otlp",
        "trace_id": trace_id,
        "span_id": span_id,
        "span_name": span.name,
        "span_kind": root.kind,
        "service_name": _text(resource.get("service.name", "")),
        "operation": _text(attributes.get("gen_ai.operation.name", "")),
        "provider": _text(
            attributes.get("gen_ai.provider.name")
            or attributes.get("gen_ai.system")
            or attributes.get("llm.provider")
            or attributes.get("llm.system")
            or ""
        ),
        "latency_ms": _latency_ms(root),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": cost,
        "llm_calls": len(llm_calls),
        "tool_errors": sum(1 for node in descendants if node.kind == "tool" and node.error),
    }
    if root.error:
        metadata["error"] = root.error
    if root.kind == "agent" and attributes.get("gen_ai.agent.name"):
        metadata["agent"] = _text(attributes["gen_ai.agent.name"])
    for key, value in {**resource, **attributes}.items():
        if key.startswith("hitl.metadata.") and len(key) > len("hitl.metadata."):
            metadata[key[len("hitl.metadata.") :]] = value
    metadata = {key: value for key, value in metadata.items() if value not in (None, "")}

    submission: dict[str, Any] = {
        "external_id": f"otel:{trace_id}:{span_id}",
        "application": _text(
            attributes.get("hitl.application") or resource.get("hitl.application") or resource.get("service.name") or ""
        ),
        "input": input_value if input_value not in (None, [], "") else "",
        "output": output_text,
        "trace": steps,
        "metadata": metadata,
        "model": model[:200],
    }
    session = (
        attributes.get("gen_ai.conversation.id")
        or attributes.get("session.id")
        or attributes.get("hitl.session_id")
        or resource.get("hitl.session_id")
    )
    if session not in (None, ""):
        submission["session_id"] = _text(session)
    encoded = orjson.dumps(submission)
    if b"\\u0000" in encoded:  # PostgreSQL stores no NUL character (span names, event attributes)
        submission = orjson.loads(encoded.replace(b"\\u0000", b"\\ufffd"))
    return Converted(span_key=f"{trace_id}:{span_id}", submission=submission, spans=1 + len(descendants))
