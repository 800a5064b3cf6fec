"""A submitted trace made readable: each step as a conversation, retrieved passages or a tool
call, with its latency, tokens and cost when the service gave them.

Pure functions over the stored JSON; a service may send any shape, so whatever is not
recognised is shown as formatted JSON rather than dropped.
"""

import json
from typing import Any

RETRIEVAL = frozenset({"retrieval", "retriever", "retrieve", "context", "search", "rag"})
TOOL = frozenset({"tool", "tool_call", "function", "function_call", "action"})
LLM = frozenset({"llm", "generation", "chat", "completion", "message", "messages", "model"})
LONG = 600  # characters shown before a part is collapsed


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def messages_of(value: Any) -> list[dict] | None:
    """A list of ``{role, content}`` messages, or None when ``value`` is not one."""
    if not isinstance(value, list) or not value:
        return None
    messages = []
    for item in value:
        if not isinstance(item, dict) or "content" not in item:
            return None
        content = _text(item["content"])
        messages.append({"role": str(item.get("role", "")), "content": content, "long": len(content) > LONG})
    return messages


def _passages(step: dict) -> list[dict]:
    passages = []
    for key in ("documents", "passages", "results", "content", "output", "text"):
        value = step.get(key)
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        for item in items:
            if isinstance(item, dict):
                text = item.get("content") or item.get("text") or item.get("page_content") or _text(item)
                source = item.get("source") or item.get("id") or item.get("url") or ""
            else:
                text, source = _text(item), ""
            passages.append({"text": str(text), "source": str(source), "long": len(str(text)) > LONG})
        if passages:
            break
    return passages


def _number(step: dict, *keys: str) -> float | None:
    for key in keys:
        value = step.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    usage = step.get("usage")
    if isinstance(usage, dict):
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
    return None


def _tokens(step: dict) -> float | None:
    total = _number(step, "tokens", "total_tokens")
    if total is not None:
        return total
    prompt, completion = (
        _number(step, "prompt_tokens", "input_tokens"),
        _number(step, "completion_tokens", "output_tokens"),
    )
    if prompt is None and completion is None:
        return None
    return (prompt or 0) + (completion or 0)


def trace_steps(trace: Any) -> list[dict]:
    """Each step of ``trace`` as the workbench shows it."""
    steps = []
    for index, step in enumerate(trace if isinstance(trace, list) else [trace] if trace else [], start=1):
        if not isinstance(step, dict):
            steps.append({"index": index, "kind": "other", "title": "step", "raw": _text(step)})
            continue
        kind = str(step.get("type") or step.get("kind") or "step").lower()
        view = {
            "index": index,
            "title": str(step.get("name") or step.get("type") or step.get("kind") or "step"),
            "latency_ms": _number(step, "latency_ms", "duration_ms"),
            "tokens": _tokens(step),
            "cost": _number(step, "cost", "cost_usd"),
            "error": step.get("error") or (step.get("status") in ("error", "failed") and step.get("status")) or "",
        }
        messages = messages_of(step.get("messages")) or messages_of(step.get("input"))
        if kind in RETRIEVAL:
            view.update(
                kind="retrieval", query=_text(step["query"]) if "query" in step else "", passages=_passages(step)
            )
        elif kind in TOOL:
            arguments = step.get("arguments", step.get("args", step.get("input")))
            result = step.get("result", step.get("output"))
            view.update(
                kind="tool",
                tool=str(step.get("tool") or step.get("name") or "tool"),
                arguments=_text(arguments) if arguments is not None else "",
                result=_text(result) if result is not None else "",
            )
            view["long"] = len(view["result"]) > LONG
        elif messages or kind in LLM:
            if messages is None:
                messages = []
                for role, key in (("user", "prompt"), ("assistant", "completion"), ("assistant", "output")):
                    if key in step:
                        content = _text(step[key])
                        messages.append({"role": role, "content": content, "long": len(content) > LONG})
            view.update(kind="llm", model=str(step.get("model", "")), messages=messages)
        else:
            view.update(kind="other", raw=_text(step))
        steps.append(view)
    return steps


def input_view(value: Any) -> dict:
    """The output's input: a conversation when it is one, else text or formatted JSON."""
    messages = messages_of(value)
    if messages is not None:
        return {"messages": messages}
    text = _text(value)
    return {"text": text, "long": len(text) > LONG}
