"""What a step says as span attributes: OpenInference, OpenTelemetry GenAI and our own.

Phoenix reads the OpenInference names (``openinference.span.kind``, ``llm.*``,
``input.value``), Langfuse reads those and the GenAI ones (``gen_ai.*``), both group spans by
``session.id`` and ``user.id``; ``agentsession.*`` keeps what only we know (the step index,
the state).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from .._models import Step, ToolCall

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "SESSION_ID",
    "USER_ID",
    "span_name",
    "step_attributes",
    "time_ns",
    "tool_attributes",
]

SESSION_ID = "session.id"
USER_ID = "user.id"

MAX_MESSAGES = 32
"""Messages flattened into ``llm.input_messages.*``, the latest ones: OpenTelemetry keeps 128
attributes per span by default, and the whole input is in ``input.value`` anyway."""

# OpenInference span kinds and GenAI operation names by step kind; others read as a chain.
_SPAN_KINDS = {"llm": "LLM", "embedding": "EMBEDDING", "retrieval": "RETRIEVER", "tool": "TOOL"}
_OPERATIONS = {"llm": "chat", "embedding": "embeddings", "tool": "execute_tool"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def time_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (a float would round)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def span_name(step: Step) -> str:
    """``chat gpt-4o-mini``, as the GenAI conventions name a model call."""
    operation = _OPERATIONS.get(step.kind, step.kind)
    if step.model:
        return f"{operation} {step.model}"
    return step.name or operation


def _error_type(status: str, error: str | None) -> str:
    """``cancelled``, or the exception's type name that our error texts start with."""
    if status == "cancelled" or not error:
        return status
    return error.split(":", 1)[0]


def _json(value: Any) -> str:
    return to_json(value, serialize_unknown=True).decode()


def _put_value(attributes: dict[str, AttributeValue], prefix: str, value: Any) -> None:
    """``input.value`` and ``input.mime_type`` (or ``output.*``) for a captured value."""
    if value is None:
        return
    if isinstance(value, str):
        attributes[f"{prefix}.value"] = value
        attributes[f"{prefix}.mime_type"] = "text/plain"
    else:
        attributes[f"{prefix}.value"] = _json(value)
        attributes[f"{prefix}.mime_type"] = "application/json"


def _message(item: Any) -> tuple[str, str] | None:
    """(role, content) of a chat message given as a mapping, or None for anything else."""
    if not isinstance(item, Mapping):
        return None
    role = item.get("role", item.get("type"))
    if not isinstance(role, str) or "content" not in item:
        return None
    content = item["content"]
    return role, content if isinstance(content, str) else _json(content)


def _put_messages(attributes: dict[str, AttributeValue], prefix: str, value: Any) -> None:
    """``llm.input_messages.<i>.message.role`` / ``.content`` when the value is a chat."""
    if isinstance(value, Mapping) and "messages" in value:
        value = value["messages"]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return
    messages = [m for m in (_message(item) for item in value[-MAX_MESSAGES:]) if m is not None]
    for index, (role, content) in enumerate(messages):
        attributes[f"{prefix}.{index}.message.role"] = role
        attributes[f"{prefix}.{index}.message.content"] = content


def step_attributes(step: Step) -> dict[str, AttributeValue]:
    """Every attribute of a step's span."""
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": _SPAN_KINDS.get(step.kind, "CHAIN"),
        SESSION_ID: step.session_id,
        "gen_ai.conversation.id": step.session_id,
        "gen_ai.operation.name": _OPERATIONS.get(step.kind, step.kind),
        "agentsession.step.index": step.step_index,
        "agentsession.step.id": step.step_id,
        "agentsession.step.kind": step.kind,
        "agentsession.step.status": step.status,
        "agentsession.trace_id": step.trace_id,
        "agentsession.state": _json(step.state),
    }
    if step.user_id is not None:
        attributes[USER_ID] = step.user_id
    if step.name is not None:
        attributes["agentsession.step.name"] = step.name
    if step.framework is not None:
        attributes["agentsession.framework"] = step.framework
    if step.parent_trace_id is not None:
        attributes["agentsession.parent_trace_id"] = step.parent_trace_id
    if step.model is not None:
        attributes["gen_ai.request.model"] = step.model
        attributes["gen_ai.response.model"] = step.model
        attributes["llm.model_name"] = step.model
    if step.provider is not None:
        attributes["gen_ai.provider.name"] = step.provider
        attributes["llm.provider"] = step.provider
        attributes["llm.system"] = step.provider
    if step.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = step.input_tokens
        attributes["llm.token_count.prompt"] = step.input_tokens
    if step.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = step.output_tokens
        attributes["llm.token_count.completion"] = step.output_tokens
    if step.total_tokens is not None:
        attributes["llm.token_count.total"] = step.total_tokens
    if step.cost_usd is not None:
        attributes["llm.cost.total"] = step.cost_usd
        attributes["gen_ai.usage.cost"] = step.cost_usd
    if step.status != "completed":
        attributes["error.type"] = _error_type(step.status, step.error)
    if step.tags:
        attributes["tag.tags"] = list(step.tags)
    if step.metadata:
        attributes["metadata"] = _json(step.metadata)
    if step.tool_calls:
        attributes["agentsession.tool_calls"] = [call.name for call in step.tool_calls]
    _put_value(attributes, "input", step.input)
    _put_value(attributes, "output", step.output)
    _put_messages(attributes, "llm.input_messages", step.input)
    if isinstance(step.output, str):
        attributes["llm.output_messages.0.message.role"] = "assistant"
        attributes["llm.output_messages.0.message.content"] = step.output
    else:
        _put_messages(attributes, "llm.output_messages", step.output)
    return attributes


def tool_attributes(step: Step, call: ToolCall, position: int) -> dict[str, AttributeValue]:
    """The attributes of the span of a tool call listed by ``step``."""
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": "TOOL",
        SESSION_ID: step.session_id,
        "gen_ai.conversation.id": step.session_id,
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.name,
        "tool.name": call.name,
        "agentsession.step.index": step.step_index,
        "agentsession.tool_call.position": position,
    }
    if step.user_id is not None:
        attributes[USER_ID] = step.user_id
    if call.error is not None:
        attributes["error.type"] = _error_type("failed", call.error)
    _put_value(attributes, "input", call.input)
    _put_value(attributes, "output", call.output)
    return attributes
