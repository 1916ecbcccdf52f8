"""The LlamaIndex span tree and the LLM calls in flight, turned into session steps.

LlamaIndex reports each LLM call as a span (``MockLLM.chat-<uuid>``) with start, progress and
end events carrying that span's id. Wrappers nest: ``chat`` of a completion model calls
``complete``, ``achat`` calls ``chat``, ``astream_chat`` starts ``stream_chat`` from inside its
generator. A step is begun by the outermost LLM span of a call only: a span inherits the call of
its parent span, and a call started while a streaming call's generator runs on this thread's
stack belongs to that stream. A streamed call ends with its end event, after its span exited.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from types import AsyncGeneratorType, GeneratorType
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

from agentsession import SessionTracker, current_session, get_settings
from agentsession.instrumentation import (
    count,
    describe_error,
    record_fault,
    resolve_session,
    warn_once,
)

from . import _extract
from ._streams import Call, Streams, closed_early
from ._tree import TOOL, Span, mark_boundary, root_of

__all__ = ["FRAMEWORK", "MAX_OPEN_SPANS", "Recorder"]

FRAMEWORK = "llamaindex"
MAX_OPEN_SPANS = 100_000
"""Spans tracked at once; past it new spans are ignored (counted), so a leak cannot grow us."""

_FAULT = "llamaindex"


class Recorder:
    """The state one pair of session handlers shares: open spans, calls in flight.

    Every entry point catches our own faults (LlamaIndex would swallow them silently), counts
    them and logs the first: recording never changes what the application gets.
    """

    def __init__(self, tracker: SessionTracker | None) -> None:
        self.tracker = tracker
        # Replaced by the span handler's ``open_spans`` once that handler exists.
        self.spans: dict[str, Span] = {}
        self.calls: dict[str, Call] = {}  # by the span id of the call's outermost LLM span
        self._streams = Streams()
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

    @property
    def streams(self) -> dict[str, Call]:
        """The calls in flight whose span returned a generator, by span id."""
        return self._streams.calls

    # -- spans --------------------------------------------------------------------------------
    def span_enter(
        self, id_: str, bound_args: Any, instance: Any, parent_id: str | None, tags: Any
    ) -> None:
        try:
            if self._streams.any_collected:
                self._reap()
            spans = self.spans
            if len(spans) >= MAX_OPEN_SPANS:
                self._over_limit()
                return
            span = Span(None if parent_id is None else spans.get(parent_id), instance)
            if instance is not None and isinstance(instance, (BaseTool, Workflow)):
                mark_boundary(span, id_, bound_args, tags)
            spans[id_] = span
        except Exception as exc:
            record_fault(_FAULT, exc)

    def span_exit(self, id_: str, result: Any) -> None:
        try:
            span = self.spans.pop(id_, None)
            call = self.calls.get(id_)
            if call is not None:
                if isinstance(result, (GeneratorType, AsyncGeneratorType)):
                    # A stream: the call ends with its end event, when the generator is done.
                    self._streams.add(id_, call, result)
                elif self.calls.pop(id_, None) is call:  # an LLM that sent no end event
                    self._end(call, result)
            if span is not None:
                if span.kind == TOOL:
                    self._record_tool(span, result, None)
                if span.auto is not None:
                    self._root_ended(span, None)
        except Exception as exc:
            record_fault(_FAULT, exc)

    def span_drop(self, id_: str, err: BaseException | None) -> None:
        try:
            span = self.spans.pop(id_, None)
            call = self.calls.pop(id_, None)
            if call is not None:
                self._streams.discard(id_)
                self._fail(call, err if err is not None else "the span was dropped")
            if span is not None:
                if span.kind == TOOL:
                    self._record_tool(span, None, err)
                if span.auto is not None:
                    self._root_ended(span, err if err is not None else "the span was dropped")
        except Exception as exc:
            record_fault(_FAULT, exc)

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
            record_fault(_FAULT, exc)

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
        outer = self._streams.running_here()
        if outer is not None:
            if span is not None:
                span.call = outer
            return
        tracker, auto_root = self._session(span, event.tags)
        if tracker is None:
            return
        capture = tracker.capture.enabled
        if capture and chat:
            prompt = _extract.messages(prompt)
        instance = None if span is None else span.instance
        handle = tracker.begin_step(
            name=_extract.call_name(span_id, instance),
            framework=FRAMEWORK,
            provider=None if instance is None else _extract.provider_of(instance),
            model=_extract.model_of(event.model_dict),
            input=prompt if capture else None,
            parent_trace_id=None if span is None else span.boundary_link(),
        )
        # Current while the call runs, so HTTP session hooks send this step's index.
        call = Call(handle, capture, handle.activate(), auto_root)
        if auto_root is not None:
            with self._lock:
                auto_root.open_calls += 1
        self.calls[span_id] = call
        if span is not None:
            span.call = call
            span.note_step(handle.trace_id)

    def _on_chunk(self, event: Any) -> None:
        call = self.calls.get(event.span_id)
        if call is not None:
            call.handle.chunk_arrived()
            call.last = event.response

    def _on_llm_end(self, event: Any) -> None:
        span_id = event.span_id
        call = self.calls.pop(span_id, None)
        if call is not None:
            self._streams.discard(span_id)
            self._end(call, event.response)

    def _on_exception(self, event: Any) -> None:
        span_id = event.span_id
        call = self.calls.pop(span_id, None)
        if call is not None:
            self._streams.discard(span_id)
            error = event.exception
            self._fail(call, closed_early() if isinstance(error, GeneratorExit) else error)

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

    # -- sessions -----------------------------------------------------------------------------
    def _session(
        self, span: Span | None, tags: Mapping[str, Any] | None
    ) -> tuple[SessionTracker | None, Span | None]:
        """The session of an event (explicit, instrument_tags, using_session, else its tree's
        own new one), and the root span whose new session it is, if it is one."""
        if self.tracker is not None:
            return self.tracker, None
        tracker = resolve_session(None, tags, auto=False) if tags else current_session()
        if tracker is not None or not get_settings().auto_session_id:
            return tracker, None
        if span is None:
            return resolve_session(None, tags, auto=True), None
        root = root_of(span)
        if root.auto is None:
            with self._lock:
                if root.auto is None:
                    root.auto = resolve_session(None, tags, auto=True)
        return root.auto, root

    def _root_ended(self, root: Span, failure: BaseException | str | None) -> None:
        with self._lock:
            root.exited = True
            root.failure = failure
            done = root.open_calls == 0
        if done:
            self._end_auto_session(root)

    def _call_ended(self, call: Call) -> None:
        root = call.root
        if root is None:
            return
        with self._lock:
            root.open_calls -= 1
            done = root.exited and root.open_calls == 0
        if done:
            self._end_auto_session(root)

    @staticmethod
    def _end_auto_session(root: Span) -> None:
        """End the session a tree made for itself, as the tree's root span ended."""
        tracker, failure = root.auto, root.failure
        if tracker is None:
            return
        if failure is None:
            tracker.end()
        elif isinstance(failure, (asyncio.CancelledError, KeyboardInterrupt)):
            tracker.end("cancelled", describe_error(failure))
        else:
            tracker.end("failed", failure if isinstance(failure, str) else describe_error(failure))

    # -- recording ----------------------------------------------------------------------------
    def _end(self, call: Call, response: Any) -> None:
        call.give_back_context()  # first: an ended step is never current, so not found after
        handle = call.handle
        try:
            input_tokens, output_tokens, total_tokens = _extract.usage_of(response)
            handle.end(
                _extract.completion_text(response) if call.capture else None,
                model=_extract.response_model(response),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
            )
        except Exception as exc:  # a response we cannot read: the call still succeeded
            record_fault(_FAULT, exc)
            handle.end()
        finally:
            self._call_ended(call)

    def _fail(self, call: Call, error: BaseException | str) -> None:
        call.give_back_context()
        handle = call.handle
        partial = call.last
        try:
            input_tokens, output_tokens, _ = _extract.usage_of(partial)
            output = _extract.completion_text(partial) if call.capture and partial else None
            handle.fail(
                error, output=output, input_tokens=input_tokens, output_tokens=output_tokens
            )
        except Exception as exc:
            record_fault(_FAULT, exc)
            handle.fail(error)
        finally:
            self._call_ended(call)

    def _record_tool(self, span: Span, result: Any, err: BaseException | None) -> None:
        tracker, _ = self._session(span, span.tags)
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
        tracker, _ = self._session(span, event.tags)
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
            name, input, output, started_ns=started_ns, duration_ms=duration_ms
        )

    def _reap(self) -> None:
        """End the streams that were garbage-collected before their end event (cancelled)."""
        for span_id in self._streams.collected():
            call = self.calls.pop(span_id, None)
            if call is not None:
                self._streams.discard(span_id)
                self._fail(call, closed_early())

    def close(self) -> None:
        """Forget everything in flight (the handlers were removed: no event will end it)."""
        try:
            self._reap()
        except Exception as exc:
            record_fault(_FAULT, exc)
        self.calls.clear()
        self._streams.clear()
        self.spans.clear()
