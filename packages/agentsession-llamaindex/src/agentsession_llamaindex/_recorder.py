"""The LlamaIndex span tree and the LLM calls in flight, turned into session steps.

LlamaIndex reports each LLM call as a span (``MockLLM.chat-<uuid>``) with start, progress and
end events carrying that span's id. Wrappers nest: ``chat`` of a completion model calls
``complete``, ``achat`` calls ``chat``, ``astream_chat`` starts ``stream_chat`` from inside its
generator. A step is begun by the outermost LLM span of a call only: a span inherits the call of
its parent span, and a call started while a streaming call's generator runs on this thread's
stack belongs to that stream. A streamed call ends with its end event, after its span exited.

Tool and workflow spans are boundaries: a step below one links (``parent_trace_id``) to the
latest step begun before it in the enclosing agent, so a sub-agent or a tool's own query engine
points at the step that called it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from types import AsyncGeneratorType, FrameType, GeneratorType
from typing import Any

from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent, RetrievalStartEvent
from llama_index.core.tools.types import BaseTool
from llama_index.core.workflow import Workflow

from agentsession import SessionTracker, StepHandle, current_session, get_settings
from agentsession.instrumentation import (
    count,
    describe_error,
    record_fault,
    resolve_session,
    warn_once,
)

from . import _extract

__all__ = ["FRAMEWORK", "MAX_OPEN_SPANS", "Recorder"]

FRAMEWORK = "llamaindex"
MAX_OPEN_SPANS = 100_000
"""Spans tracked at once; past it new spans are ignored (counted), so a leak cannot grow us."""

_FAULTS = "llamaindex"
_STREAM_CLOSED = "the stream was closed before its end"

# Span kinds. A boundary (TOOL, WORKFLOW) links the steps below it to the step before it.
_PLAIN, _INNER_TOOL, _TOOL, _WORKFLOW = 0, 1, 2, 3


class _Call:
    """An LLM call being recorded as a step, from its start event to its end."""

    __slots__ = ("capture", "chunk_ns", "handle", "last", "perf_ns", "stream")

    def __init__(self, handle: StepHandle, capture: bool) -> None:
        self.handle = handle
        self.capture = capture
        self.perf_ns = time.perf_counter_ns()
        self.chunk_ns = 0
        self.last: Any = None  # the latest streamed chunk
        self.stream: weakref.ref[Any] | None = None


class _Span:
    """One open LlamaIndex span: its place in the tree and what it means for steps."""

    __slots__ = (
        "auto",
        "call",
        "instance",
        "kind",
        "last_trace",
        "link",
        "parent",
        "perf_ns",
        "started_ns",
        "tags",
        "tool_input",
    )

    def __init__(self, parent: _Span | None, instance: Any) -> None:
        self.parent = parent
        self.instance = instance
        self.call: _Call | None = None if parent is None else parent.call
        self.kind = _PLAIN
        self.link: str | None = None  # boundaries: the trace the steps below link to
        self.last_trace: str | None = None  # the latest step begun below, up to a boundary
        self.auto: SessionTracker | None = None  # roots: the session made when none was in force
        self.perf_ns = 0
        self.started_ns = 0
        self.tags: Mapping[str, Any] | None = None
        self.tool_input: Any = None


def _collected(queue: deque[str], span_id: str, _ref: object) -> None:
    # Runs inside the garbage collector, on any thread, maybe while a lock is held: only queue.
    queue.append(span_id)


class Recorder:
    """The state one pair of session handlers shares: open spans, calls in flight.

    Every entry point catches our own faults (LlamaIndex would swallow them silently), counts
    them and logs the first: recording never changes what the application gets.
    """

    def __init__(self, tracker: SessionTracker | None, spans: dict[str, Any]) -> None:
        self.tracker = tracker
        self.spans: dict[str, _Span] = spans  # the span handler's open_spans
        self.calls: dict[str, _Call] = {}  # by the span id of the call's outermost LLM span
        self.streams: dict[str, _Call] = {}  # calls whose span returned a generator
        self.collected: deque[str] = deque()  # streams garbage-collected before their end
        self._lock = threading.Lock()
        self._routes: dict[type, Callable[[Any], None] | None] = {
            LLMChatStartEvent: self._on_chat_start,
            LLMCompletionStartEvent: self._on_completion_start,
            LLMChatInProgressEvent: self._on_chunk,
            LLMCompletionInProgressEvent: self._on_chunk,
            LLMChatEndEvent: self._on_llm_end,
            LLMCompletionEndEvent: self._on_llm_end,
            ExceptionEvent: self._on_exception,
            RetrievalStartEvent: self._on_timed_start,
            EmbeddingStartEvent: self._on_timed_start,
            RetrievalEndEvent: self._on_retrieval_end,
            EmbeddingEndEvent: self._on_embedding_end,
        }
        self._bases = tuple(self._routes.items())

    # -- spans --------------------------------------------------------------------------------
    def span_enter(
        self, id_: str, bound_args: Any, instance: Any, parent_id: str | None, tags: Any
    ) -> None:
        try:
            if self.collected:
                self._reap()
            spans = self.spans
            if len(spans) >= MAX_OPEN_SPANS:
                self._over_limit()
                return
            parent = None if parent_id is None else spans.get(parent_id)
            span = _Span(parent, instance)
            if instance is not None and isinstance(instance, (BaseTool, Workflow)):
                self._boundary(span, id_, parent, bound_args, tags)
            spans[id_] = span
        except Exception as exc:
            record_fault(_FAULTS, exc)

    def span_exit(self, id_: str, result: Any) -> None:
        try:
            span = self.spans.pop(id_, None)
            call = self.calls.get(id_)
            if call is not None:
                if isinstance(result, (GeneratorType, AsyncGeneratorType)):
                    # A stream: the call ends with its end event, when the generator is done.
                    call.stream = weakref.ref(
                        result, functools.partial(_collected, self.collected, id_)
                    )
                    self.streams[id_] = call
                elif self.calls.pop(id_, None) is call:  # an LLM that sent no end event
                    self._end(call, result)
            if span is not None and span.kind == _TOOL:
                self._record_tool(span, result, None)
        except Exception as exc:
            record_fault(_FAULTS, exc)

    def span_drop(self, id_: str, err: BaseException | None) -> None:
        try:
            span = self.spans.pop(id_, None)
            call = self.calls.pop(id_, None)
            if call is not None:
                self.streams.pop(id_, None)
                self._fail(call, err if err is not None else "the span was dropped")
            if span is not None and span.kind == _TOOL:
                self._record_tool(span, None, err)
        except Exception as exc:
            record_fault(_FAULTS, exc)

    def _boundary(
        self, span: _Span, id_: str, parent: _Span | None, bound_args: Any, tags: Any
    ) -> None:
        """Make a tool or a workflow run a boundary; a tool's outermost span records the call."""
        if isinstance(span.instance, Workflow):
            if _extract.label_of(id_).rpartition(".")[2] != "run":
                return  # one of its steps (older versions pass the workflow as their instance)
            span.kind = _WORKFLOW
        else:
            if parent is not None and parent.kind in (_TOOL, _INNER_TOOL):
                span.kind = _INNER_TOOL  # a tool calling itself through a wrapper or adapter
                return
            span.kind = _TOOL
            span.tags = tags
            kwargs = bound_args.kwargs
            context_param = getattr(span.instance, "ctx_param_name", None)
            if context_param is not None and context_param in kwargs:
                kwargs = {k: v for k, v in kwargs.items() if k != context_param}
            span.tool_input = _extract.tool_input(bound_args.args, kwargs)
            span.started_ns = time.time_ns()
            span.perf_ns = time.perf_counter_ns()
        ancestor = parent
        while ancestor is not None:
            if ancestor.last_trace is not None:
                span.link = ancestor.last_trace
                return
            if ancestor.kind >= _TOOL:
                span.link = ancestor.link
                return
            ancestor = ancestor.parent

    def _over_limit(self) -> None:
        count("llamaindex.spans_over_limit")
        warn_once(
            "llamaindex.spans_over_limit",
            "agentsession: more than %d LlamaIndex spans are open at once; new ones are not "
            "recorded until some end (counted in get_stats()['llamaindex.spans_over_limit'])",
            MAX_OPEN_SPANS,
        )

    # -- events -------------------------------------------------------------------------------
    def handle(self, event: Any) -> None:
        try:
            kind = type(event)
            try:
                route = self._routes[kind]
            except KeyError:
                route = self._routes[kind] = self._route_of(kind)
            if route is not None:
                route(event)
        except Exception as exc:
            record_fault(_FAULTS, exc)

    def _route_of(self, kind: type) -> Callable[[Any], None] | None:
        """The handler of an event class we do not know by name (a subclass), else None."""
        for base, route in self._bases:
            if issubclass(kind, base):
                return route
        return None

    def _on_chat_start(self, event: Any) -> None:
        self._on_llm_start(event, event.messages, chat=True)

    def _on_completion_start(self, event: Any) -> None:
        self._on_llm_start(event, event.prompt, chat=False)

    def _on_llm_start(self, event: Any, prompt: Any, *, chat: bool) -> None:
        span_id = event.span_id
        if span_id is None or span_id in self.calls:
            return
        span = self.spans.get(span_id)
        if span is None:
            if len(self.spans) >= MAX_OPEN_SPANS:
                return  # maybe nested in a call: better a step missing than one twice
        elif span.call is not None:
            return  # nested in a call already recorded: the same call, not a new step
        if self.streams:
            outer = self._stream_running_here()
            if outer is not None:
                if span is not None:
                    span.call = outer
                return
        tracker = self._session(span, event.tags)
        if tracker is None:
            return
        capture = tracker.capture.enabled
        if capture and chat:
            prompt = _extract.messages(prompt)
        link = None
        ancestor = span
        while ancestor is not None:
            if ancestor.kind >= _TOOL:
                link = ancestor.link
                break
            ancestor = ancestor.parent
        instance = None if span is None else span.instance
        handle = tracker.begin_step(
            name=_extract.label_of(span_id).rpartition(".")[2],
            framework=FRAMEWORK,
            provider=None if instance is None else _extract.provider_of(instance),
            model=_extract.model_of(event.model_dict),
            input=prompt if capture else None,
            parent_trace_id=link,
        )
        handle.activate()  # current_step(): HTTP session hooks send this step's index
        call = _Call(handle, capture)
        self.calls[span_id] = call
        if span is not None:
            span.call = call
        trace_id = handle.trace_id
        ancestor = span
        while ancestor is not None:
            ancestor.last_trace = trace_id
            if ancestor.kind >= _TOOL:
                break
            ancestor = ancestor.parent

    def _on_chunk(self, event: Any) -> None:
        call = self.calls.get(event.span_id)
        if call is not None:
            if not call.chunk_ns:
                call.chunk_ns = time.perf_counter_ns()
            call.last = event.response

    def _on_llm_end(self, event: Any) -> None:
        span_id = event.span_id
        call = self.calls.pop(span_id, None)
        if call is not None:
            self.streams.pop(span_id, None)
            self._end(call, event.response)

    def _on_exception(self, event: Any) -> None:
        span_id = event.span_id
        call = self.calls.pop(span_id, None)
        if call is not None:
            self.streams.pop(span_id, None)
            error = event.exception
            self._fail(call, _closed_early() if isinstance(error, GeneratorExit) else error)

    def _on_timed_start(self, event: Any) -> None:
        span = self.spans.get(event.span_id)
        if span is not None:
            span.started_ns = time.time_ns()
            span.perf_ns = time.perf_counter_ns()

    def _on_retrieval_end(self, event: Any) -> None:
        self._record_timed(
            event,
            _extract.query_text(event.str_or_query_bundle),
            _extract.nodes_summary(event.nodes),
        )

    def _on_embedding_end(self, event: Any) -> None:
        embeddings = event.embeddings
        dimensions = len(embeddings[0]) if embeddings else 0
        self._record_timed(
            event, list(event.chunks), {"embeddings": len(embeddings), "dimensions": dimensions}
        )

    # -- recording ----------------------------------------------------------------------------
    def _session(self, span: _Span | None, tags: Mapping[str, Any] | None) -> SessionTracker | None:
        """The session of an event: explicit, instrument_tags, using_session, else the tree's."""
        if self.tracker is not None:
            return self.tracker
        tracker = resolve_session(None, tags, auto=False) if tags else current_session()
        if tracker is not None or not get_settings().auto_session_id:
            return tracker
        if span is None:
            return resolve_session(None, tags, auto=True)
        root = span
        while root.parent is not None:
            root = root.parent
        if root.auto is None:
            with self._lock:
                if root.auto is None:
                    root.auto = resolve_session(None, tags, auto=True)
        return root.auto

    def _end(self, call: _Call, response: Any) -> None:
        handle = call.handle
        try:
            input_tokens, output_tokens, total_tokens = _extract.usage_of(response)
            metadata = None
            if call.chunk_ns:
                metadata = {"time_to_first_chunk_ms": (call.chunk_ns - call.perf_ns) / 1e6}
            handle.end(
                _extract.completion_text(response) if call.capture else None,
                model=_extract.response_model(response),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
                metadata=metadata,
            )
        except Exception as exc:  # a response we cannot read: the call still succeeded
            record_fault(_FAULTS, exc)
            handle.end()
        finally:
            handle.__exit__(None, None, None)

    def _fail(self, call: _Call, error: BaseException | str) -> None:
        handle = call.handle
        partial = call.last
        try:
            input_tokens, output_tokens, _ = _extract.usage_of(partial)
            output = _extract.completion_text(partial) if call.capture and partial else None
            handle.fail(
                error, output=output, input_tokens=input_tokens, output_tokens=output_tokens
            )
        except Exception as exc:
            record_fault(_FAULTS, exc)
            handle.fail(error)
        finally:
            handle.__exit__(None, None, None)

    def _record_tool(self, span: _Span, result: Any, err: BaseException | None) -> None:
        tracker = self._session(span, span.tags)
        if tracker is None:
            return
        if err is None:
            output, error = _extract.tool_result(result)
        else:
            output, error = None, describe_error(err)
        tracker.record_tool_call(
            _extract.tool_name(span.instance),
            span.tool_input,
            output,
            error=error,
            started_ns=span.started_ns,
            duration_ms=(time.perf_counter_ns() - span.perf_ns) / 1e6,
        )

    def _record_timed(self, event: Any, input: Any, output: Any) -> None:
        """A retrieval or embedding call, timed from its start event, for the next step."""
        span_id = event.span_id
        span = None if span_id is None else self.spans.get(span_id)
        tracker = self._session(span, event.tags)
        if tracker is None:
            return
        started_ns = duration_ms = None
        if span is not None and span.perf_ns:
            started_ns = span.started_ns
            duration_ms = (time.perf_counter_ns() - span.perf_ns) / 1e6
        if span_id is None:
            name = type(event).__name__
        else:
            name = _extract.call_name(span_id, None if span is None else span.instance)
        tracker.record_tool_call(
            name,
            input,
            output,
            started_ns=started_ns,
            duration_ms=duration_ms,
        )

    # -- streams ------------------------------------------------------------------------------
    def _stream_running_here(self) -> _Call | None:
        """The streaming call whose generator is running on this thread's stack, if any.

        ``astream_chat`` of a completion model starts ``stream_chat`` lazily, inside its
        generator: that nested call's span has no LLM ancestor, but the outer generator's frame
        is below it on the stack.
        """
        running: dict[FrameType, _Call] = {}
        frame: FrameType | None
        for call in list(self.streams.values()):
            generator = None if call.stream is None else call.stream()
            if generator is None:
                continue
            if isinstance(generator, AsyncGeneratorType):
                frame = generator.ag_frame if generator.ag_running else None
            else:
                frame = generator.gi_frame if generator.gi_running else None
            if frame is not None:
                running[frame] = call
        if not running:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            outer = running.get(frame)
            if outer is not None:
                return outer
            frame = frame.f_back
        return None

    def _reap(self) -> None:
        """End the streams that were garbage-collected before their end event (cancelled)."""
        while self.collected:
            try:
                span_id = self.collected.popleft()
            except IndexError:
                return
            call = self.calls.pop(span_id, None)
            if call is not None:
                self.streams.pop(span_id, None)
                self._fail(call, _closed_early())

    def close(self) -> None:
        """Forget everything in flight (the handlers were removed: no event will end it)."""
        try:
            self._reap()
        except Exception as exc:
            record_fault(_FAULTS, exc)
        self.calls.clear()
        self.streams.clear()
        self.spans.clear()


def _closed_early() -> asyncio.CancelledError:
    # The consumer stopped reading: the call was cancelled, not failed (a cancellation's status).
    return asyncio.CancelledError(_STREAM_CLOSED)
