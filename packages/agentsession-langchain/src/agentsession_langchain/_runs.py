"""What a handler remembers about LangChain runs while they are open, and what handlers share.

LangChain tells a handler only a run's id and its parent's id, and gives metadata only at the
start. A handler therefore maps each open run to a :class:`Scope`, which the runs below it
share: the session they fall back on, the parent link of their steps, and whether another
handler records them. Entries are removed when their run ends.

Two registries are shared by every handler of the process, because LangGraph merges the
callbacks a nested call is given with its caller's, so that one run can reach several handlers:

- ``recording``: LLM and tool runs being recorded, with the session recording them. A second
  handler writing to the same session (or one that resolves sessions itself, like the one
  ``instrument()`` adds) leaves such a run alone: one call is one step.
- ``claimed``: runs at which a handler with a session of its own joined a run tree already
  under way (a nested agent given ``SessionCallbackHandler(session.child())``). Handlers that
  were there before leave that subtree to it, as LangChain itself does when a nested call's
  callbacks replace its caller's.

langchain-core (0.3 and 1.x) hands a tool function that takes a ``config`` its parent's
config, so what the tool starts looks like the tool's sibling. LangChain calls ``on_tool_start``
in the caller's context and runs the tool function in a copy of it, while true siblings
(``RunnableParallel`` branches, ``ToolNode``'s parallel tools) run in contexts of their own:
a context variable set from ``on_tool_start`` to ``on_tool_end`` tells the runs the tool
started from its siblings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

from agentsession import SessionTracker, StepHandle
from agentsession.instrumentation import count, describe_error, resolve_session, warn_once

__all__ = [
    "MAX_OPEN_RUNS",
    "RunBook",
    "RunKey",
    "Scope",
    "ToolRun",
    "claimed",
    "recording",
]

RunKey = int
"""A run id as its 128-bit integer (``UUID.int``): hashed in C, where a ``UUID`` is hashed in
Python, and the maps below are read and written several times per LangChain event."""

MAX_OPEN_RUNS = 100_000
"""Open runs one handler keeps of each kind; past it the oldest is dropped as never ended."""

recording: dict[RunKey, SessionTracker] = {}
claimed: dict[RunKey, SessionTracker] = {}


class Scope:
    """What the runs below one root, chain or tool run share."""

    __slots__ = (
        "auto",
        "claim",
        "delegated",
        "last_trace_id",
        "owner",
        "parent_trace_id",
        "tracker",
    )

    def __init__(
        self,
        owner: RunKey | None,
        tracker: SessionTracker | None = None,
        parent_trace_id: str | None = None,
        *,
        delegated: bool = False,
    ) -> None:
        self.owner = owner
        # The session of the runs below that resolve to no other; made on first use below a
        # root run that found none (``auto``), and ended when that root run ends.
        self.tracker = tracker
        self.auto = False
        # Trace id of the LLM step whose tool call started this subtree, if any.
        self.parent_trace_id = parent_trace_id
        # Trace id of the latest LLM step of this subtree itself (not of the agents its tools
        # run): the step whose tool calls a tool run below answers, even while other tools of
        # that step run agents at the same time.
        self.last_trace_id: str | None = None
        # Another handler records this subtree.
        self.delegated = delegated
        # The owner run is in ``claimed`` on this handler's behalf.
        self.claim = False


class ToolRun:
    """A tool or retriever call under way: what its tool call record will say."""

    __slots__ = (
        "book",
        "ended",
        "input",
        "name",
        "outer",
        "parent_run_id",
        "perf_start",
        "scope",
        "started_ns",
        "token",
        "tracker",
    )

    def __init__(
        self,
        book: RunBook,
        tracker: SessionTracker,
        name: str,
        input: Any,
        scope: Scope,
        parent_run_id: RunKey | None,
    ) -> None:
        self.book = book
        self.tracker = tracker
        self.name = name
        self.input = input
        self.scope = scope
        self.parent_run_id = parent_run_id
        self.ended = False
        # The tool around this one in the context its function runs in, and the token that
        # gives the caller's context back the value it had before ``on_tool_start``.
        self.outer: ToolRun | None = None
        self.token: Token[ToolRun | None] | None = None
        self.started_ns = time.time_ns()
        self.perf_start = time.perf_counter_ns()

    def duration_ms(self) -> float:
        return (time.perf_counter_ns() - self.perf_start) / 1e6


_inside_tool: ContextVar[ToolRun | None] = ContextVar("agentsession_langchain_tool", default=None)
"""The innermost recorded tool whose function runs in this context (each links to the one
around it): set by ``on_tool_start``, reset by ``on_tool_end`` / ``on_tool_error``."""


class RunBook:
    """A handler's map of its open runs: scopes, tool calls under way, and who records what.

    ``session`` is the handler's own session, or None for a handler that resolves one per run.
    """

    def __init__(self, session: SessionTracker | None) -> None:
        self.session = session
        self._scopes: dict[RunKey, Scope] = {}
        self._tools: dict[RunKey, ToolRun] = {}
        self._lock = threading.Lock()
        # Set when LangChain may keep calling this handler, but it must record no new run.
        self._retired = False

    def _parent_scope(self, parent_run_id: RunKey | None) -> Scope | None:
        """The scope a run joins: its parent's, or that of the tool that started it."""
        if parent_run_id is None:
            return None
        if _inside_tool.get() is not None:
            scope = self._tool_scope(parent_run_id)
            if scope is not None:
                return scope
        return self._scopes.get(parent_run_id)

    def _tool_scope(self, parent_run_id: RunKey) -> Scope | None:
        """The scope of this handler's tool whose function runs in this context and was started
        under ``parent_run_id``: a run reported under the tool's parent is the tool's."""
        tool = _inside_tool.get()
        while tool is not None:
            if tool.parent_run_id == parent_run_id and tool.book is self and not tool.ended:
                return tool.scope
            tool = tool.outer
        return None

    def _delegates(self, run_id: RunKey) -> bool:
        """Whether ``run_id``'s subtree is recorded by another handler, with another session."""
        claimer = claimed.get(run_id)
        return claimer is not None and claimer is not self.session

    def _enter(self, run_id: RunKey, parent_run_id: RunKey | None) -> Scope:
        """Map a chain run to its scope (and its parent's, mostly: the shared object)."""
        scopes = self._scopes
        if parent_run_id is None:
            scope = Scope(run_id)
        else:
            parent = scopes.get(parent_run_id)
            if parent is None or claimed or _inside_tool.get() is not None:
                scope = self._join(run_id, parent_run_id, parent)
            else:
                scope = parent
        scopes[run_id] = scope
        if len(scopes) > MAX_OPEN_RUNS:
            self._evict_oldest(scopes)
        return scope

    def _join(self, run_id: RunKey, parent_run_id: RunKey, parent: Scope | None) -> Scope:
        """The scope of a run below a tool, below another handler's subtree, or below a run
        this handler never saw."""
        tool_scope = self._tool_scope(parent_run_id)
        if tool_scope is not None:
            parent = tool_scope
        if parent is None:
            # Joined a run tree under way: this handler was given to a nested call.
            scope = Scope(run_id)
            if self.session is not None:
                claimed[run_id] = self.session
                scope.claim = True
            return scope
        if claimed and not parent.delegated and self._delegates(parent_run_id):
            return Scope(run_id, delegated=True)
        return parent

    def _leave(self, run_id: RunKey, error: BaseException | None) -> None:
        """Forget a run; the root of an auto session ends it, a claim is given up."""
        scope = self._scopes.pop(run_id, None)
        if scope is None or not (scope.auto or scope.claim) or scope.owner != run_id:
            return
        if scope.claim:
            claimed.pop(run_id, None)
        if scope.auto and scope.tracker is not None:
            # The session made for this run tree ends with the run that owns it.
            if error is None:
                scope.tracker.end()
            elif isinstance(error, Exception):
                scope.tracker.end("failed", describe_error(error))
            else:
                scope.tracker.end("cancelled", type(error).__name__)

    def _skips(self, run_id: RunKey, parent_run_id: RunKey | None, scope: Scope | None) -> bool:
        """Whether another handler records this LLM or tool run (see the module's docstring)."""
        if scope is not None and scope.delegated:
            return True
        if claimed and parent_run_id is not None and self._delegates(parent_run_id):
            return True
        recorder = recording.get(run_id)
        return recorder is not None and (self.session is None or recorder is self.session)

    def _tracker_for(
        self, metadata: Mapping[str, Any] | None, scope: Scope | None
    ) -> SessionTracker | None:
        """The session of a run with no session given: metadata, using_session, else the
        enclosing run's. Below a root run that found none, the first run to ask makes one
        (auto ids on) for the whole run tree; it ends with that root run."""
        tracker = resolve_session(None, metadata, auto=False)
        if tracker is not None or scope is None:
            return tracker
        if scope.tracker is None:
            with self._lock:  # batch() workers under one root must share one new session
                if scope.tracker is None:
                    scope.tracker = resolve_session(None, metadata)
                    scope.auto = scope.tracker is not None
        return scope.tracker

    def _open_tool(
        self,
        run_id: RunKey,
        parent_run_id: RunKey | None,
        metadata: dict[str, Any] | None,
        name: str,
        tool_input: Any,
    ) -> None:
        """Start the tool call record of a tool or retriever run; only map its scope when no
        session records it."""
        if self._retired:
            return
        scope = self._parent_scope(parent_run_id)
        tracker = None
        if self._skips(run_id, parent_run_id, scope):
            if scope is None or not scope.delegated:
                scope = Scope(run_id, delegated=True)
        else:
            # A tool called on its own opens no session: its call would belong to no step.
            tracker = self.session or self._tracker_for(metadata, scope)
        if tracker is None:
            self._scopes[run_id] = scope or Scope(run_id)
            return
        recording[run_id] = tracker
        # The step whose tool call this is: the latest of the subtree the tool runs in, else the
        # one that called the tool running that subtree, else the session's latest.
        parent_trace_id = None
        if scope is not None:
            parent_trace_id = scope.last_trace_id or scope.parent_trace_id
        if parent_trace_id is None:
            parent_trace_id = tracker.latest_trace_id
        tool_scope = Scope(run_id, tracker, parent_trace_id)
        self._scopes[run_id] = tool_scope
        tool = ToolRun(self, tracker, name, tool_input, tool_scope, parent_run_id)
        self._tools[run_id] = tool
        if parent_run_id is not None:
            tool.outer = _inside_tool.get()
            tool.token = _inside_tool.set(tool)
        if len(self._tools) > MAX_OPEN_RUNS:
            self._evict_oldest(self._tools)

    def _close_tool(self, run_id: RunKey, output: Any, error: str | None) -> None:
        """End a tool or retriever run: its call goes to its session's next step."""
        self._scopes.pop(run_id, None)
        tool = self._tools.pop(run_id, None)
        if tool is None:
            return
        recording.pop(run_id, None)
        tool.ended = True
        if tool.token is not None:
            try:
                _inside_tool.reset(tool.token)
            except (ValueError, RuntimeError):
                # Ended in another context than the one it started in: that one keeps the
                # tool (ended, so ignored); this one forgets it if it shows it.
                if _inside_tool.get() is tool:
                    _inside_tool.set(tool.outer)
        tool.tracker.record_tool_call(
            tool.name,
            tool.input,
            output,
            error=error,
            started_ns=tool.started_ns,
            duration_ms=tool.duration_ms(),
        )

    def _evict_oldest(self, table: dict[RunKey, Any]) -> None:
        """Drop the oldest entry of a full table, as a run that will never end."""
        with self._lock:
            try:
                run_id = next(iter(table))
            except (StopIteration, RuntimeError):  # emptied, or resized by another thread
                return
            entry = table.pop(run_id, None)
        count("dropped.langchain_runs")
        warn_once(
            "langchain:evicted",
            "agentsession: more than %d LangChain runs were open at once in one handler; the "
            "oldest are dropped as never ended (counted in dropped.langchain_runs)",
            MAX_OPEN_RUNS,
        )
        recording.pop(run_id, None)
        claimed.pop(run_id, None)
        if isinstance(entry, tuple) and isinstance(entry[0], StepHandle):
            # An open step: (handle, activation token, task watched, its done callback).
            handle, _, task, watch = entry
            if task is not None:
                task.remove_done_callback(watch)
            handle.fail("the LangChain run never ended")
