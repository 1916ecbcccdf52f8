"""What a step keeps of LlamaIndex objects: messages, token counts, model, provider, nodes.

Pure functions over duck-typed objects (``getattr`` rather than ``isinstance``): they run on the
caller's thread for every LLM call and must read every supported llama-index-core version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "call_name",
    "completion_text",
    "label_of",
    "message_dict",
    "messages",
    "model_of",
    "nodes_summary",
    "provider_of",
    "query_text",
    "response_model",
    "tool_input",
    "tool_name",
    "tool_result",
    "usage_of",
]

MAX_NODES = 50
"""Retrieved nodes listed per retrieval (id and score each); the rest are only counted."""

_UUID_SUFFIX = 37  # "-" + a UUID4: the dispatcher names spans "Class.method-<uuid4>"
_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt_token_count", "prompt_eval_count")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "candidates_token_count", "eval_count")
_TOTAL_KEYS = ("total_tokens", "total_token_count")
_UNSET_MODEL_NAMES = frozenset({"", "unknown"})

_providers: dict[type, str | None] = {}


def label_of(span_id: str) -> str:
    """``"MockLLM.chat"`` for the span id ``"MockLLM.chat-<uuid4>"``."""
    if len(span_id) > _UUID_SUFFIX and span_id[-_UUID_SUFFIX] == "-":
        return span_id[:-_UUID_SUFFIX]
    return span_id


def call_name(span_id: str, instance: object) -> str:
    """``"VectorIndexRetriever.retrieve"``: the instance's class (older versions name spans
    after the class that defines the method, e.g. ``BaseRetriever``) and the method."""
    label = label_of(span_id)
    if instance is None:
        return label
    return f"{type(instance).__name__}.{label.rpartition('.')[2]}"


def provider_of(instance: object) -> str | None:
    """``"openai"`` for a class from ``llama_index.llms.openai``; None for LlamaIndex's own."""
    cls = type(instance)
    try:
        return _providers[cls]
    except KeyError:
        pass
    parts = cls.__module__.split(".")
    provider = parts[2] if len(parts) > 2 and parts[:2] == ["llama_index", "llms"] else None
    _providers[cls] = provider
    return provider


def model_of(model_dict: Mapping[str, Any]) -> str | None:
    """The model name in an LLM start event's ``model_dict``, None when LlamaIndex has none."""
    for key in ("model_name", "model"):
        value = model_dict.get(key)
        if isinstance(value, str) and value not in _UNSET_MODEL_NAMES:
            return value
    return None


def response_model(response: Any) -> str | None:
    """The model a provider says answered (``raw.model``), more precise than the configured one."""
    raw = getattr(response, "raw", None)
    model = None if raw is None else _value(raw, "model")
    return model if isinstance(model, str) and model else None


def _value(source: Any, key: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def _first_int(source: Any, keys: Sequence[str]) -> int | None:
    for key in keys:
        value = _value(source, key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def usage_of(response: Any) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) tokens from a response's ``raw`` usage or ``additional_kwargs``.

    Reads OpenAI (``usage.prompt_tokens``), Anthropic (``usage.input_tokens``), Gemini
    (``usage_metadata``) and Ollama (``prompt_eval_count``) shapes, and the token counts
    LlamaIndex's OpenAI integration copies into ``additional_kwargs``.
    """
    if response is None:
        return None, None, None
    raw = getattr(response, "raw", None)
    sources: list[Any] = []
    if raw is not None:
        for key in ("usage", "usage_metadata"):
            usage = _value(raw, key)
            if usage is not None:
                sources.append(usage)
        sources.append(raw)
    extra = getattr(response, "additional_kwargs", None)
    if extra:
        sources.append(extra)
    for source in sources:
        input_tokens = _first_int(source, _INPUT_KEYS)
        output_tokens = _first_int(source, _OUTPUT_KEYS)
        if input_tokens is not None or output_tokens is not None:
            return input_tokens, output_tokens, _first_int(source, _TOTAL_KEYS)
    return None, None, None


def _tool_call(call: Any) -> Any:
    """One tool call an LLM asked for: ToolSelection, ToolCallBlock or an OpenAI tool call."""
    name = getattr(call, "tool_name", None)
    if name is not None:
        return {
            "id": getattr(call, "tool_id", None) or getattr(call, "tool_call_id", None),
            "name": name,
            "arguments": getattr(call, "tool_kwargs", None),
        }
    function = _value(call, "function")
    if function is not None:
        return {
            "id": _value(call, "id"),
            "name": _value(function, "name"),
            "arguments": _value(function, "arguments"),
        }
    return call


def message_dict(message: Any) -> dict[str, Any]:
    """A chat message as ``{"role", "content"}`` plus its tool calls or tool call id, if any."""
    role = message.role
    data: dict[str, Any] = {"role": getattr(role, "value", role), "content": message.content}
    calls = [
        _tool_call(block)
        for block in getattr(message, "blocks", ())
        if getattr(block, "block_type", None) == "tool_call"
    ]
    extra = message.additional_kwargs
    if extra:
        listed = extra.get("tool_calls")
        if listed and not calls:
            calls = [_tool_call(call) for call in listed]
        call_id = extra.get("tool_call_id")
        if call_id is not None:
            data["tool_call_id"] = call_id
    if calls:
        data["tool_calls"] = calls
    return data


def messages(chat_messages: Sequence[Any]) -> list[dict[str, Any]]:
    """A chat call's input: each message as :func:`message_dict` gives it."""
    return [message_dict(message) for message in chat_messages]


def completion_text(response: Any) -> Any:
    """What a chat or completion response said: the message, or the completion's text."""
    message = getattr(response, "message", None)
    if message is not None:
        return message_dict(message)
    return getattr(response, "text", None)


def query_text(query: Any) -> Any:
    """A retrieval's query: a string, or a QueryBundle's ``query_str``."""
    return query if isinstance(query, str) else getattr(query, "query_str", query)


def nodes_summary(nodes: Sequence[Any]) -> list[dict[str, Any]]:
    """Node ids and scores of a retrieval's results, never their text (first MAX_NODES)."""
    summary = [
        {"id": getattr(getattr(scored, "node", None), "node_id", None), "score": scored.score}
        for scored in nodes[:MAX_NODES]
    ]
    if len(nodes) > MAX_NODES:
        summary.append({"more_nodes": len(nodes) - MAX_NODES})
    return summary


def tool_name(tool: Any) -> str:
    """The name a tool is offered to the model under, else its class name."""
    metadata = getattr(tool, "metadata", None)
    name = getattr(metadata, "name", None)
    return name if isinstance(name, str) and name else type(tool).__name__


def tool_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A tool's arguments: the keyword arguments, the single positional one, or both."""
    if not args:
        return dict(kwargs)
    if not kwargs and len(args) == 1:
        return args[0]
    return {"args": list(args), **kwargs}


def tool_result(result: Any) -> tuple[Any, str | None]:
    """(output, error) of a tool call: a ToolOutput's content, its text when it is an error."""
    content = getattr(result, "content", result)
    if getattr(result, "is_error", False):
        return content, str(content)
    return content, None
