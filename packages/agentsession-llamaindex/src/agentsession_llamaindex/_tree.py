"""The part of LlamaIndex's span tree a step needs: its call, its boundary, its tree's session.

Tool and workflow spans are boundaries: a step below one links (``parent_trace_id``) to the
latest step begun before it in the enclosing agent, so a sub-agent or a tool's own query engine
points at the step that called it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.workflow import Workflow

from agentsession import SessionTracker

from . import _extract

if TYPE_CHECKING:
    from ._streams import Call

__all__ = ["INNER_TOOL", "PLAIN", "TOOL", "WORKFLOW", "Span", "mark_boundary", "root_of"]

# Span kinds, in this order: from TOOL on, a span is a boundary.
PLAIN, INNER_TOOL, TOOL, WORKFLOW = 0, 1, 2, 3


class Span:
    """One open LlamaIndex span: its place in the tree and what it means for steps."""

    __slots__ = (
        "auto",
        "call",
        "exited",
        "failure",
        "instance",
        "kind",
        "last_trace",
        "link",
        "open_calls",
        "parent",
        "perf_ns",
        "started_ns",
        "tags",
        "tool_input",
    )

    def __init__(self, parent: Span | None, instance: Any) -> None:
        self.parent = parent
        self.instance = instance
        self.call: Call | None = None if parent is None else parent.call
        self.kind = PLAIN
        self.link: str | None = None  # boundaries: the trace the steps below link to
        self.last_trace: str | None = None  # the latest step begun below, up to a boundary
        self.perf_ns = 0
        self.started_ns = 0
        self.tags: Mapping[str, Any] | None = None
        self.tool_input: Any = None
        # Roots only: the session made for this tree when none was in force, which ends once
        # the root span has ended and no call of the tree is still streaming.
        self.auto: SessionTracker | None = None
        self.open_calls = 0
        self.exited = False
        self.failure: BaseException | str | None = None

    def boundary_link(self) -> str | None:
        """The trace a step begun in this span links to: its nearest boundary's link."""
        span: Span | None = self
        while span is not None:
            if span.kind >= TOOL:
                return span.link
            span = span.parent
        return None

    def note_step(self, trace_id: str) -> None:
        """Remember the step just begun here in every span up to the nearest boundary."""
        span: Span | None = self
        while span is not None:
            span.last_trace = trace_id
            if span.kind >= TOOL:
                return
            span = span.parent


def root_of(span: Span) -> Span:
    """The root span of ``span``'s tree: where the tree's own new session is kept."""
    while span.parent is not None:
        span = span.parent
    return span


def mark_boundary(span: Span, id_: str, bound_args: Any, tags: Any) -> None:
    """Make a tool call or a workflow run a boundary; a tool's outermost span records the call."""
    parent = span.parent
    if isinstance(span.instance, Workflow):
        if _extract.label_of(id_).rpartition(".")[2] != "run":
            return  # one of its steps (older versions pass the workflow as their instance)
        span.kind = WORKFLOW
    else:
        if parent is not None and parent.kind in (TOOL, INNER_TOOL):
            span.kind = INNER_TOOL  # a tool calling itself through a wrapper or adapter
            return
        span.kind = TOOL
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
        if ancestor.kind >= TOOL:
            span.link = ancestor.link
            return
        ancestor = ancestor.parent
