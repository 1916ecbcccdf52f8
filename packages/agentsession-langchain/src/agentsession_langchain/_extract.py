"""Reading LangChain's callback arguments: model, provider, messages, output and token counts.

Everything here runs on the caller's thread inside a callback, so it only picks fields and
builds small dicts and tuples: no copies of content, no JSON. Values keep references to
LangChain's own strings and lists, which LangChain does not mutate once a message exists; the
core masks, caps and serializes them later, in the background writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

__all__ = [
    "ModelInfo",
    "Response",
    "chat_input",
    "documents_output",
    "message_record",
    "model_info",
    "read_response",
    "run_name",
    "tool_output",
]

ModelInfo = tuple[str | None, str | None, str | None]
"""A step's name, provider and model, as known when its run starts."""

Response = tuple[Any, str | None, int | None, int | None, int | None]
"""What a run ended with: output, model that answered, input, output and total tokens."""

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "AIMessageChunk": "assistant",
    "HumanMessageChunk": "user",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "FunctionMessageChunk": "function",
}
_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name")
"""Where integrations keep the model name (OpenAI, older OpenAI, Bedrock, Azure)."""
_MODEL_FAMILIES = ("chat_models", "llms")
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
_LEGACY_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_MODEL_INFOS_MAX = 256
_model_infos: dict[int, tuple[Mapping[str, Any] | None, Any, Any, ModelInfo]] = {}


def message_record(message: Any) -> dict[str, Any]:
    """A message as a small dict: role, content, and tool calls / tool call id when present."""
    if not isinstance(message, BaseMessage):  # a plain string or dict a model was handed
        return {"role": "user", "content": message}
    # Only the fields each message class has: a missing attribute of a pydantic model costs
    # microseconds.
    kind = message.type
    role = _ROLES.get(kind)
    if role is None:
        role = message.role if isinstance(message, ChatMessage) else kind
    record: dict[str, Any] = {"role": role, "content": message.content}
    if isinstance(message, AIMessage):
        if message.tool_calls:
            record["tool_calls"] = list(message.tool_calls)
    elif isinstance(message, ToolMessage):
        record["tool_call_id"] = message.tool_call_id
    if message.name:
        record["name"] = message.name
    return record


def chat_input(messages: Sequence[Sequence[Any]]) -> Any:
    """The input of a chat-model run: its message list (LangChain passes one list per run)."""
    if len(messages) == 1:
        return [message_record(message) for message in messages[0]]
    return [[message_record(message) for message in batch] for batch in messages]


def run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str | None:
    """The run's name: ``run_name`` from the config, else the component's class name."""
    name = kwargs.get("name")
    if name:
        return str(name)
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    path = serialized.get("id")
    return str(path[-1]) if isinstance(path, list) and path else None


def _first_model(source: Mapping[str, Any] | None) -> str | None:
    if not source:
        return None
    for key in _MODEL_KEYS:
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _describe(
    serialized: Mapping[str, Any] | None,
    ls_provider: Any,
    ls_model: Any,
    invocation_params: Mapping[str, Any] | None,
) -> ModelInfo:
    name = run_name(serialized, {})
    provider = ls_provider if isinstance(ls_provider, str) and ls_provider else None
    if provider is None and serialized:
        # A serializable model's id reads ["langchain", "chat_models", "openai", "ChatOpenAI"].
        path = serialized.get("id")
        if isinstance(path, list) and len(path) >= 4 and path[-3] in _MODEL_FAMILIES:
            provider = str(path[-2])
    model = ls_model if isinstance(ls_model, str) and ls_model else None
    if model is None:
        model = _first_model(invocation_params)
    if model is None and serialized:
        kwargs = serialized.get("kwargs")
        model = _first_model(kwargs) if isinstance(kwargs, Mapping) else None
    return name, provider, model


def model_info(
    serialized: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> ModelInfo:
    """Name: the config's ``run_name``, else the model's class. Provider: LangSmith's
    ``ls_provider``, else the integration in the serialized id. Model: ``ls_model_name`` (what
    LangChain reads from the model, with a per-call override), else the invocation params,
    else the serialized kwargs.

    A chat model hands LangChain the same cached ``serialized`` dict on every call, so the
    answer is kept per model while LangSmith's two values stay the same.
    """
    ls_provider = ls_model = None
    if metadata:
        ls_provider = metadata.get("ls_provider")
        ls_model = metadata.get("ls_model_name")
    key = id(serialized)
    cached = _model_infos.get(key)
    if (
        cached is not None
        and cached[0] is serialized
        and cached[1] == ls_provider
        and cached[2] == ls_model
    ):
        info = cached[3]
    else:
        info = _describe(serialized, ls_provider, ls_model, kwargs.get("invocation_params"))
        if serialized:
            if len(_model_infos) >= _MODEL_INFOS_MAX:
                _model_infos.clear()
            # The dict is kept in the entry, so that its id cannot be reused meanwhile.
            _model_infos[key] = (serialized, ls_provider, ls_model, info)
    name = kwargs.get("name")
    return info if not name else (str(name), info[1], info[2])


def _generation_output(generation: Generation) -> Any:
    if isinstance(generation, ChatGeneration):
        return message_record(generation.message)
    return generation.text


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_response(response: LLMResult) -> Response:
    """The message (chat) or text (LLM) answered, a list when there were several; the model
    that answered (``gpt-4o-2024-08-06`` where ``gpt-4o`` was asked); token counts from the
    message's ``usage_metadata``, else from ``llm_output["token_usage"]``."""
    batches = response.generations
    if len(batches) == 1 and len(batches[0]) == 1 and not response.llm_output:
        # The common case, read in one go: one answer from a chat model, usage on the message.
        generation = batches[0][0]
        if isinstance(generation, ChatGeneration):
            message = generation.message
            metadata = message.response_metadata
            model = _first_model(metadata) if metadata else None
            usage = message.usage_metadata if isinstance(message, AIMessage) else None
            if not usage:
                return message_record(message), model, None, None, None
            return (
                message_record(message),
                model,
                _as_int(usage.get("input_tokens")),
                _as_int(usage.get("output_tokens")),
                _as_int(usage.get("total_tokens")),
            )
    if len(batches) == 1 and len(batches[0]) == 1:
        generations: Sequence[Generation] = batches[0]
        output = _generation_output(generations[0])
    else:
        generations = [generation for batch in batches for generation in batch]
        output = [_generation_output(generation) for generation in generations] or None
    model = usage = None
    for generation in generations:
        if isinstance(generation, ChatGeneration):
            message = generation.message
            if model is None and message.response_metadata:
                model = _first_model(message.response_metadata)
            if usage is None and isinstance(message, AIMessage):
                usage = message.usage_metadata
    llm_output = response.llm_output
    if model is None and llm_output:
        model = _first_model(llm_output)
    if usage:
        counts: Mapping[str, Any] = usage
        keys = _USAGE_KEYS
    else:
        if not llm_output:
            return output, model, None, None, None
        found = llm_output.get("token_usage") or llm_output.get("usage")
        if not isinstance(found, Mapping):
            return output, model, None, None, None
        counts = found
        keys = _USAGE_KEYS if "input_tokens" in counts else _LEGACY_USAGE_KEYS
    return (
        output,
        model,
        _as_int(counts.get(keys[0])),
        _as_int(counts.get(keys[1])),
        _as_int(counts.get(keys[2])),
    )


def tool_output(output: Any) -> tuple[Any, str | None]:
    """A tool's result and, for a ``ToolMessage`` with ``status="error"``, its error text."""
    if isinstance(output, ToolMessage):
        content = output.content
        if output.status == "error":
            return content, content if isinstance(content, str) else "tool error"
        return content, None
    return output, None


def documents_output(documents: Sequence[Any]) -> list[dict[str, Any]]:
    """Retrieved documents as ``{"content", "metadata"}`` dicts."""
    return [
        {"content": document.page_content, "metadata": document.metadata}
        if isinstance(document, Document)
        else {"content": document}
        for document in documents
    ]
