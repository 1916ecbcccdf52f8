"""One step per model call: what ``create()`` and ``create_stream()`` record, wrapped or not.

Both the wrapper client and the instrumentor go through :func:`record_create` and
:func:`record_stream`. They translate a model call into the core's calls and nothing more: the
session is the core's ``resolve_session``, the step is ``begin_step`` / ``end`` / ``fail``.
Everything on our side is guarded: a fault of ours is counted and logged once
(``faults.autogen``) and the call goes on unrecorded; the model's own result, exception or
cancellation always reaches the caller unchanged.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeAlias

from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage

from agentsession import SessionTracker, StepHandle, current_session, get_settings
from agentsession.instrumentation import describe_error, record_fault, resolve_session

from ._caller import Caller, find_caller
from ._messages import messages_data, new_tool_results, result_data, tool_names

__all__ = ["SessionRef", "is_recording", "record_create", "record_stream"]

SessionRef: TypeAlias = SessionTracker | str | None
"""A tracker, a session id (resolved on each call), or None for the session in force."""

_FAULT = "autogen"
_FRAMEWORK = "autogen"
SPEAKER_SELECTION = "speaker_selection"

# Provider names by client class (looked up along the MRO, so subclasses inherit them).
_PROVIDERS = {
    "OpenAIChatCompletionClient": "openai",
    "AzureOpenAIChatCompletionClient": "azure",
    "AnthropicChatCompletionClient": "anthropic",
    "AnthropicBedrockChatCompletionClient": "aws_bedrock",
    "AzureAIChatCompletionClient": "azure_ai",
    "OllamaChatCompletionClient": "ollama",
    "LlamaCppChatCompletionClient": "llama_cpp",
    "SKChatCompletionAdapter": "semantic_kernel",
    "ReplayChatCompletionClient": "replay",
}

_recording: ContextVar[bool] = ContextVar("agentsession_autogen_recording", default=False)
"""True while a model call is being recorded here: a client that delegates to another (a cache,
our wrapper around an instrumented client) is one call, one step."""


@dataclass(frozen=True)
class _Flow:
    """The latest step recorded in this context: how the next one links to its parent."""

    trace_id: str
    parent_trace_id: str | None
    task: weakref.ref[asyncio.Task[Any]] | None
    called_tools: bool


_flow: ContextVar[_Flow | None] = ContextVar("agentsession_autogen_flow", default=None)


def is_recording() -> bool:
    """True inside a model call already being recorded (a nested call is not a second step)."""
    return _recording.get()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None


def _parent_trace_id() -> str | None:
    """The trace id of the step this call is nested in, if any.

    A step that asked for tools is the parent of every model call made while they run. AgentChat
    runs tools in tasks of their own (and a team inside a tool runs in its runtime's tasks), which
    copy this context: a call in another task than the step that asked is nested in that step.
    A call in the same task after it is the agent's next step, a sibling: it takes the same
    parent. (So a task started after a step that asked for tools, before that task's next model
    call, is taken for one of those tools: e.g. ``asyncio.gather`` of two agent runs right after
    an agent's turn that ended on a tool, without reflection.)
    """
    flow = _flow.get()
    if flow is None:
        return None
    if flow.called_tools and (flow.task is None or flow.task() is not _current_task()):
        return flow.trace_id
    return flow.parent_trace_id


def _model_of(client: ChatCompletionClient) -> str | None:
    create_args = getattr(client, "_create_args", None)  # the OpenAI, Azure, Anthropic... clients
    if isinstance(create_args, dict):
        model = create_args.get("model")
        if isinstance(model, str):
            return model
    model = getattr(client, "model", None)
    return model if isinstance(model, str) else None


def _provider_of(client: ChatCompletionClient) -> str | None:
    for cls in type(client).__mro__:
        provider = _PROVIDERS.get(cls.__name__)
        if provider is not None:
            return provider
    return None


_auto_session: ContextVar[SessionTracker | None] = ContextVar(
    "agentsession_autogen_auto_session", default=None
)
"""The session made for calls in no session, kept in the context of the task that made it."""
_team_sessions: OrderedDict[str, SessionTracker] = OrderedDict()
_team_sessions_lock = threading.Lock()
_MAX_TEAM_SESSIONS = 1024


def _resolve(session: SessionRef, team_id: str | None) -> SessionTracker | None:
    """The tracker of a call: the one given, else the core's rule, else a run's own session.

    With auto ids on and no session in force, calls are grouped as a user would group them: an
    agent's later calls, and those of the tools and inner teams it starts, run in its task or
    in tasks copied from it, and find its session in the context; each participant of a team
    runs in a task of the team's runtime instead, so team members share one by the team's id
    (a team kept between runs is one conversation). No signal marks the end of a run, so these
    sessions stay open, as a ``using_session("id")`` session does.
    """
    if isinstance(session, str):
        return resolve_session(None, {"session_id": session})
    if session is not None or current_session() is not None:
        return resolve_session(session, None)
    if not get_settings().auto_session_id:
        return None
    tracker = _auto_session.get()
    if tracker is None and team_id is not None:
        with _team_sessions_lock:
            tracker = _team_sessions.get(team_id)
            if tracker is None:
                tracker = _team_sessions[team_id] = SessionTracker()
                if len(_team_sessions) > _MAX_TEAM_SESSIONS:
                    _team_sessions.popitem(last=False)
            else:
                _team_sessions.move_to_end(team_id)
    if tracker is None:
        tracker = resolve_session(None, None, auto=True)
    _auto_session.set(tracker)
    return tracker


class ModelCall:
    """One model call being recorded: its step, and the context it lends the inner client."""

    __slots__ = (
        "_guard_token",
        "_step_token",
        "cancellation_token",
        "handle",
        "parent_trace_id",
        "tracker",
    )

    def __init__(
        self,
        tracker: SessionTracker,
        handle: StepHandle,
        parent_trace_id: str | None,
        cancellation_token: Any,
    ) -> None:
        self.tracker = tracker
        self.handle = handle
        self.parent_trace_id = parent_trace_id
        self.cancellation_token = cancellation_token
        self._step_token: Token[StepHandle | None] | None = None
        self._guard_token: Token[bool] | None = None

    def lend(self) -> None:
        """Make the step current while the inner client runs (HTTP hooks send its index)."""
        self._step_token = self.handle.activate()
        self._guard_token = _recording.set(True)

    def take_back(self) -> None:
        """Undo :meth:`lend`; call it in the context :meth:`lend` ran in."""
        try:
            if self._step_token is not None:
                self.handle.deactivate(self._step_token)
            if self._guard_token is not None:
                _recording.reset(self._guard_token)
        except ValueError:  # reset from another context than set in: clear instead
            _recording.set(False)
        except Exception as exc:
            record_fault(_FAULT, exc)
        self._step_token = self._guard_token = None

    def finish(self, result: CreateResult) -> None:
        """Close the step with the model's answer, its tokens and its finish reason."""
        output: Any = None
        metadata: dict[str, Any] = {}
        input_tokens = output_tokens = None
        try:  # an answer we cannot read still closes its step
            metadata["finish_reason"] = result.finish_reason
            if result.cached:
                metadata["cached"] = True
            input_tokens = result.usage.prompt_tokens
            output_tokens = result.usage.completion_tokens
            if self.tracker.capture.enabled:
                output = result_data(result)
        except Exception as exc:
            record_fault(_FAULT, exc)
        try:
            self.handle.end(
                output, input_tokens=input_tokens, output_tokens=output_tokens, metadata=metadata
            )
            self._remember(called_tools=isinstance(result.content, list))
        except Exception as exc:
            record_fault(_FAULT, exc)

    def fail(self, error: BaseException | str) -> None:
        """Close the step as failed, or as cancelled when the call was cancelled."""
        try:
            recorded = error
            if isinstance(error, Exception) and _is_cancelled(self.cancellation_token):
                # The client noticed the CancellationToken and raised its own error.
                recorded = asyncio.CancelledError(describe_error(error))
            self.handle.fail(recorded)
            self._remember(called_tools=False)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def _remember(self, called_tools: bool) -> None:
        task = _current_task()
        _flow.set(
            _Flow(
                self.handle.trace_id,
                self.parent_trace_id,
                None if task is None else weakref.ref(task),
                called_tools,
            )
        )


def _is_cancelled(token: Any) -> bool:
    is_cancelled = getattr(token, "is_cancelled", None)
    return bool(is_cancelled()) if callable(is_cancelled) else False


def open_call(
    client: ChatCompletionClient,
    messages: Sequence[LLMMessage],
    options: dict[str, Any],
    session: SessionRef,
    *,
    stream: bool,
) -> ModelCall | None:
    """Open the step of a model call; None when it is not to be recorded (or we failed)."""
    try:
        try:
            caller = find_caller()
        except Exception as exc:  # the agent's name is lost, not the step
            record_fault(_FAULT, exc)
            caller = Caller()
        tracker = _resolve(session, caller.team_id)
        if tracker is None:
            return None
        for tool in new_tool_results(tracker, messages):
            tracker.record_tool_call(tool.name, tool.input, tool.output, error=tool.error)
        metadata: dict[str, Any] = {}
        if caller.agent is not None:
            metadata["agent"] = caller.agent
        if caller.team_id is not None:
            metadata["team_id"] = caller.team_id
        if caller.agent_id is not None:
            metadata["agent_id"] = caller.agent_id
        tools = tool_names(options.get("tools"))
        if tools:
            metadata["tools"] = tools
        if stream:
            metadata["stream"] = True
        parent = _parent_trace_id()
        handle = tracker.begin_step(
            kind=SPEAKER_SELECTION if caller.selects_speaker else "llm",
            name=SPEAKER_SELECTION if caller.selects_speaker else caller.agent,
            framework=_FRAMEWORK,
            provider=_provider_of(client),
            model=_model_of(client),
            input=messages_data(messages) if tracker.capture.enabled else None,
            parent_trace_id=parent,
            metadata=metadata,
        )
        return ModelCall(tracker, handle, parent, options.get("cancellation_token"))
    except Exception as exc:
        record_fault(_FAULT, exc)
        return None


async def record_create(
    client: ChatCompletionClient,
    create: Callable[[], Awaitable[CreateResult]],
    messages: Sequence[LLMMessage],
    options: dict[str, Any],
    session: SessionRef,
) -> CreateResult:
    """Run ``create()`` (the inner call, bound to its arguments) as one step."""
    call = open_call(client, messages, options, session, stream=False)
    if call is None:
        return await create()
    call.lend()
    try:
        result = await create()
    except BaseException as error:
        call.take_back()
        call.fail(error)
        raise
    call.take_back()
    call.finish(result)
    return result


async def record_stream(
    client: ChatCompletionClient,
    open_stream: Callable[[], AsyncIterator[str | CreateResult]],
    messages: Sequence[LLMMessage],
    options: dict[str, Any],
    session: SessionRef,
) -> AsyncGenerator[str | CreateResult, None]:
    """Relay ``create_stream()`` (the inner call, bound to its arguments) as one step.

    The step is current only while the inner stream produces its next chunk, never while the
    consumer holds one, so that nothing the consumer does between chunks is taken for it.
    """
    call = open_call(client, messages, options, session, stream=True)
    if call is None:
        async for item in open_stream():
            yield item
        return
    result: CreateResult | None = None
    stream: AsyncIterator[str | CreateResult] | None = None
    try:
        while True:
            call.lend()
            try:
                if stream is None:
                    stream = open_stream()
                item = await stream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                call.take_back()
            if isinstance(item, CreateResult):
                result = item
            else:
                call.handle.chunk_arrived()
            yield item
    except GeneratorExit:
        # The consumer stopped reading: done if it had the result, abandoned otherwise.
        if result is not None:
            call.finish(result)
        else:
            call.fail(asyncio.CancelledError("the stream was closed before its final result"))
        await _close(stream)
        raise
    except BaseException as error:
        call.fail(error)
        await _close(stream)
        raise
    if result is not None:
        call.finish(result)
    else:
        call.fail("the stream ended without a CreateResult")


async def _close(stream: AsyncIterator[Any] | None) -> None:
    """Close the inner stream as the consumer closed ours (its own errors propagate, as they
    would without us)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
