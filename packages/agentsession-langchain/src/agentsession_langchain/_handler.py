"""SessionCallbackHandler: LangChain callback events translated into session steps.

One step per chat-model or LLM run (start, then end or error), tool and retriever runs as the
next step's tool calls, chain runs only as links between them (see ``_runs``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from agentsession import SessionTracker, StepHandle
from agentsession.instrumentation import describe_error, record_fault, resolve_session

from ._extract import chat_input, documents_output, model_info, read_response, run_name, tool_output
from ._runs import MAX_OPEN_RUNS, RunBook, RunKey, Scope, claimed, recording

__all__ = ["SessionCallbackHandler"]


def _key(run_id: UUID | None) -> RunKey | None:
    return None if run_id is None else run_id.int


_OpenStep = tuple[
    StepHandle,
    "Token[StepHandle | None] | None",
    "asyncio.Task[Any] | None",
    "Callable[[asyncio.Task[Any]], None] | None",
]

_FAULT = "langchain"
_FRAMEWORK = "langchain"


class SessionCallbackHandler(RunBook, BaseCallbackHandler):
    """Records every chat-model and LLM call of the runs it is given as a session step.

    ``SessionCallbackHandler(session)`` records into ``session``. Without one, each run's
    session is resolved in the documented order: run metadata ``session_id`` / ``thread_id`` /
    ``conversation_id``, the current ``using_session``, the session of the enclosing run, then
    a new session per top-level run when auto ids are on (ended with that run). Tool and
    retriever calls go into the next step's ``tool_calls``; the steps of an agent run from a
    tool link to the step that called the tool (``parent_trace_id``).

    One handler may serve many threads and asyncio tasks at once. It never raises into the
    chain: our faults are counted in ``agentsession.get_stats()["faults.langchain"]``.
    """

    raise_error = False
    # Called on the event loop for async runs: in the caller's context and in order, with no
    # hop to a thread pool per event.
    run_inline = True

    def __init__(self, session: SessionTracker | None = None) -> None:
        super().__init__(session)
        # Each open step, with the token that gives its context back the step current before,
        # and the asyncio task watched for its cancellation with the callback watching it.
        self._steps: dict[RunKey, _OpenStep] = {}

    def retire(self) -> None:
        """Record no new run from now on; the steps under way still end."""
        self._retired = True

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (0 between invocations: nothing is kept)."""
        return len(self._scopes) + len(self._steps) + len(self._tools)

    # -- chains: links only --------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._enter(run_id.int, _key(parent_run_id))
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._leave(run_id.int, None)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._leave(run_id.int, error)
        except Exception as exc:
            record_fault(_FAULT, exc)

    # -- models: one step per run --------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._begin(
                run_id.int, _key(parent_run_id), serialized, metadata, kwargs, messages, chat=True
            )
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._begin(
                run_id.int, _key(parent_run_id), serialized, metadata, kwargs, prompts, chat=False
            )
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            entry = self._steps.get(run_id.int)
            if entry is not None:
                entry[0].chunk_arrived()
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._end(run_id.int, response, None)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._end(run_id.int, None, error)
        except Exception as exc:
            record_fault(_FAULT, exc)

    # -- tools and retrievers: the next step's tool calls -------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = run_name(serialized, kwargs) or "tool"
            tool_input = input_str if inputs is None else dict(inputs)
            self._open_tool(run_id.int, _key(parent_run_id), metadata, name, tool_input)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            result, error = tool_output(output)
            self._close_tool(run_id.int, result, error)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._close_tool(run_id.int, None, describe_error(error))
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = run_name(serialized, kwargs) or "retriever"
            self._open_tool(run_id.int, _key(parent_run_id), metadata, name, query)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._close_tool(run_id.int, documents_output(documents), None)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._close_tool(run_id.int, None, describe_error(error))
        except Exception as exc:
            record_fault(_FAULT, exc)

    # -- steps ---------------------------------------------------------------------------------
    def _begin(
        self,
        run_id: RunKey,
        parent_run_id: RunKey | None,
        serialized: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
        prompt: Sequence[Any],
        *,
        chat: bool,
    ) -> None:
        """Open the step of a chat-model (``chat``) or LLM run, unless another handler has it."""
        if self._retired:
            return
        scope = self._parent_scope(parent_run_id)
        if (claimed or run_id in recording or (scope is not None and scope.delegated)) and (
            self._skips(run_id, parent_run_id, scope)
        ):
            return
        tracker = self.session or self._tracker_for(metadata, scope)
        if tracker is None:
            if scope is not None:
                return
            # A model called on its own, in no session: a new one (auto ids) for this run only.
            tracker = resolve_session(None, metadata)
            if tracker is None:
                return
            scope = Scope(run_id, tracker)
            scope.auto = True
            self._scopes[run_id] = scope
        if not tracker.capture.enabled:
            step_input = None
        elif chat:
            step_input = chat_input(prompt)
        else:
            step_input = prompt[0] if len(prompt) == 1 else list(prompt)
        name, provider, model = model_info(serialized, metadata, kwargs)
        trace_id = f"{run_id:032x}"  # unique, of a trace id's form: LangSmith shows the same
        handle = tracker.begin_step(
            name=name,
            framework=_FRAMEWORK,
            provider=provider,
            model=model,
            input=step_input,
            trace_id=trace_id,
            parent_trace_id=None if scope is None else scope.parent_trace_id,
        )
        if scope is not None:
            scope.last_trace_id = trace_id
        recording[run_id] = tracker
        # HTTP hooks (instrument_http_client) then label the request with this step's index
        # instead of taking one of their own. Not for a batch of prompts in one run: their
        # steps would be activated and given back out of order.
        token = handle.activate() if kwargs.get("batch_size", 1) == 1 else None
        # Close the step as cancelled if its task is: LangChain reports no error for a model
        # call whose task was cancelled (``asyncio.wait_for`` timing out, a client going away).
        # A task that ends normally proves nothing: LangChain may have started the run in a
        # helper task and go on with it elsewhere.
        # _get_running_loop() answers "is a loop running" without raising, where
        # current_task() raises outside one: this runs for every sync call too.
        task = asyncio.current_task() if asyncio._get_running_loop() is not None else None
        watch = None
        if task is not None:
            watch = functools.partial(self._task_done, run_id)
            task.add_done_callback(watch)
        steps = self._steps
        steps[run_id] = (handle, token, task, watch)
        if len(steps) > MAX_OPEN_RUNS:
            self._evict_oldest(steps)

    def _task_done(self, run_id: RunKey, task: asyncio.Task[Any]) -> None:
        try:
            if task.cancelled() and run_id in self._steps:
                self._end(run_id, None, asyncio.CancelledError("the task was cancelled"))
        except Exception as exc:
            record_fault(_FAULT, exc)

    def _end(self, run_id: RunKey, response: LLMResult | None, error: BaseException | None) -> None:
        entry = self._steps.pop(run_id, None)
        if entry is not None:
            handle, token, task, watch = entry
            if task is not None and watch is not None:
                task.remove_done_callback(watch)
            if token is not None:
                handle.deactivate(token)
            recording.pop(run_id, None)
            if isinstance(error, GeneratorExit):
                # The caller stopped reading a stream: a cancellation, not a failure.
                handle.fail(asyncio.CancelledError("the stream was closed before its end"))
            elif error is not None:
                handle.fail(error)
            elif response is not None:
                output, model, input_tokens, output_tokens, total_tokens = read_response(response)
                handle.end(
                    output,
                    model=model,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    total_tokens=total_tokens,
                )
        if self.session is None and self._scopes:  # a model run alone may own an auto session
            self._leave(run_id, error)
