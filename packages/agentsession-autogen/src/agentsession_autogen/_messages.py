"""AutoGen's model messages as plain data, and the tool results they carry.

A step's input and output are stored as JSON-like data (what a ``mask`` hook receives), never as
AutoGen objects. Tool results are read from the messages a model call receives: AutoGen appends
a ``FunctionExecutionResultMessage`` to the agent's model context after running tools, so the
next call of that agent's model sees every result since its previous call, with no hook into the
tool execution path.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)

from agentsession import SessionTracker

__all__ = [
    "ToolResult",
    "messages_data",
    "new_tool_results",
    "result_data",
    "tool_names",
]

_MAX_TOOL_NAMES = 64
"""Names of the tools offered to a model kept in its step's metadata (the first ones)."""
_REMEMBERED_RESULTS = 512
"""Tool results remembered per session, so a retried call does not list them a second time."""


def _arguments_data(arguments: str) -> Any:
    """A function call's JSON arguments as data; the raw text when it is not valid JSON."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _call_data(call: FunctionCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": _arguments_data(call.arguments)}


def _content_data(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Images are left out: their base64 bytes would only be cut by the content cap.
        return [
            part
            if isinstance(part, str)
            else _call_data(part)
            if isinstance(part, FunctionCall)
            else {"type": type(part).__name__.lower()}
            for part in content
        ]
    return str(content)


def _message_data(message: Any) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, UserMessage):
        return {"role": "user", "source": message.source, "content": _content_data(message.content)}
    if isinstance(message, AssistantMessage):
        data = {
            "role": "assistant",
            "source": message.source,
            "content": _content_data(message.content),
        }
        if message.thought:
            data["thought"] = message.thought
        return data
    if isinstance(message, FunctionExecutionResultMessage):
        return {"role": "tool", "content": [_execution_data(result) for result in message.content]}
    return {"role": type(message).__name__, "content": str(message)}  # a type added after us


def _execution_data(result: FunctionExecutionResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "call_id": result.call_id,
        "name": result.name,
        "content": result.content,
    }
    if result.is_error:
        data["is_error"] = True
    return data


def messages_data(messages: Sequence[LLMMessage]) -> list[dict[str, Any]]:
    """The messages of a model call as plain dicts (``role``, ``source``, ``content``)."""
    return [_message_data(message) for message in messages]


def result_data(result: CreateResult) -> Any:
    """What the model answered: its text or its function calls, and its thought if any."""
    content = _content_data(result.content)
    return {"content": content, "thought": result.thought} if result.thought else content


def tool_names(tools: Any) -> list[str]:
    """The names of the tools offered to the model (``Tool`` objects or ``ToolSchema`` dicts)."""
    names: list[str] = []
    for tool in list(tools or ())[:_MAX_TOOL_NAMES]:
        name = tool.get("name") if isinstance(tool, Mapping) else getattr(tool, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


@dataclass(frozen=True)
class ToolResult:
    """One tool execution as the next model call sees it."""

    name: str
    input: Any
    output: str
    error: str | None


def _results_since_last_answer(
    messages: Sequence[LLMMessage],
) -> list[tuple[FunctionExecutionResult, FunctionCall | None]]:
    """Tool results after the agent's last text answer, each with the call that asked for it.

    Older results were listed when they were new; stopping at the last answer also keeps a
    conversation's earlier history out of a session that starts later.
    """
    start = 0
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if isinstance(message, AssistantMessage) and isinstance(message.content, str):
            start = position + 1
            break
    calls: dict[str, FunctionCall] = {}
    found: list[tuple[FunctionExecutionResult, FunctionCall | None]] = []
    for message in messages[start:]:
        if isinstance(message, AssistantMessage) and isinstance(message.content, list):
            calls.update((call.id, call) for call in message.content)
        elif isinstance(message, FunctionExecutionResultMessage):
            found.extend((result, calls.get(result.call_id)) for result in message.content)
    return found


class _Seen:
    """The tool results already listed in one session (by identity: ids repeat in replays)."""

    def __init__(self) -> None:
        # The results themselves are kept so that their ids cannot be reused while remembered.
        self.results: OrderedDict[int, FunctionExecutionResult] = OrderedDict()

    def first_time(self, result: FunctionExecutionResult) -> bool:
        if id(result) in self.results:
            return False
        self.results[id(result)] = result
        if len(self.results) > _REMEMBERED_RESULTS:
            self.results.popitem(last=False)
        return True


_seen_lock = threading.Lock()
_seen: weakref.WeakKeyDictionary[SessionTracker, _Seen] = weakref.WeakKeyDictionary()


def new_tool_results(tracker: SessionTracker, messages: Sequence[LLMMessage]) -> list[ToolResult]:
    """The tool results in ``messages`` that this session has not listed yet."""
    found = _results_since_last_answer(messages)
    if not found:
        return []
    with _seen_lock:
        seen = _seen.get(tracker)
        if seen is None:
            seen = _seen[tracker] = _Seen()
        fresh = [(result, call) for result, call in found if seen.first_time(result)]
    tool_results: list[ToolResult] = []
    for result, call in fresh:
        name = result.name or (call.name if call is not None else "tool")
        tool_results.append(
            ToolResult(
                name=name,
                input=None if call is None else _arguments_data(call.arguments),
                output=result.content,
                error=result.content if result.is_error else None,
            )
        )
    return tool_results
