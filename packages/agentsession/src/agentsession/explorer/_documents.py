"""The JSON documents the explorer API answers with, built from any session reader.

Long sessions are the point of a timeline, so the step-heavy documents are assembled from JSON
text: a reader that can produce it (the SQLite backend, see ``StepJsonReader``) never builds a
``Step`` per step, and only each step's state is parsed here, to diff it with the one before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic_core import from_json, to_json

from .._models import Score, SessionSummary, Step
from .._replay import state_diff, step_tree
from ..backends._base import SessionReader, StepJsonReader, step_json, steps_as_json

__all__ = [
    "TIMELINE_FIELDS",
    "export_jsonl",
    "session_document",
    "timeline_document",
]

TIMELINE_FIELDS: Mapping[str, str] = {
    "step": "step_index",
    "step_id": "step_id",
    "trace_id": "trace_id",
    "parent_trace_id": "parent_trace_id",
    "timestamp": "started_at",
    "ended_at": "ended_at",
    "kind": "kind",
    "name": "name",
    "framework": "framework",
    "provider": "provider",
    "model": "model",
    "duration_ms": "duration_ms",
    "tokens": "total_tokens",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cost_usd": "cost_usd",
    "status": "status",
    "error": "error",
    "user_id": "user_id",
    "state_snapshot": "state",
    "tool_calls": "tool_calls",
    "input": "input",
    "output": "output",
    "tags": "tags",
    "metadata": "metadata",
}
"""Each timeline entry's keys and the Step field each holds: TraceForge's keys (``step``,
``timestamp``, ``tokens``, ``state_snapshot``, ...) and the rest of the step. Every entry also
has ``state_diff``, ``parent_step`` and ``depth``, computed here."""

_LINK_FIELDS: Mapping[str, str] = {
    "step": "step_index",
    "trace_id": "trace_id",
    "parent_trace_id": "parent_trace_id",
    "state": "state",
}
_STEP_PREFIX = '{"step":'


def _joined(parts: Sequence[str]) -> str:
    return "[" + ",".join(parts) + "]"


def _summary_json(summary: SessionSummary) -> str:
    return summary.model_dump_json()


def _scores_json(scores: Sequence[Score]) -> str:
    return to_json(list(scores)).decode()


def session_document(reader: SessionReader, summary: SessionSummary) -> str:
    """``{"session": ..., "steps": [...], "scores": [...]}``: a session and all it holds."""
    steps = steps_as_json(reader, summary.session_id)
    return (
        f'{{"session":{_summary_json(summary)},"steps":{_joined(steps)},'
        f'"scores":{_scores_json(summary.scores)}}}'
    )


def export_jsonl(reader: SessionReader, summary: SessionSummary) -> str:
    """A session line, then a line per step, each with a "type" first (as the CLI exports)."""
    lines = ['{"type":"session",' + _summary_json(summary)[1:]]
    lines.extend('{"type":"step",' + step[1:] for step in steps_as_json(reader, summary.session_id))
    return "\n".join(lines) + "\n"


def timeline_document(reader: SessionReader, summary: SessionSummary) -> str:
    """``{"session": ..., "timeline": [...], "tree_order": [...]}``: the steps to draw.

    ``timeline`` is in step order; ``tree_order`` lists the step indexes top to bottom, each
    step under its parent (as ``depth`` and ``parent_step`` say).
    """
    if isinstance(reader, StepJsonReader):
        entries, links = _from_json_reader(reader, summary.session_id)
    else:
        entries, links = _from_models(reader.list_steps(summary.session_id))
    placed, parents = step_tree([(link.trace_id, link.parent_trace_id) for link in links])
    depths = dict(placed)
    items = []
    for position, (entry, link) in enumerate(zip(entries, links, strict=True)):
        parent = parents.get(position)
        parent_step = "null" if parent is None else str(links[parent].step)
        items.append(
            f'{entry[:-1]},"state_diff":{link.diff},"parent_step":{parent_step},'
            f'"depth":{depths[position]}}}'
        )
    order = [links[position].step for position, _ in placed]
    return (
        f'{{"session":{_summary_json(summary)},"timeline":{_joined(items)},'
        f'"tree_order":{to_json(order).decode()}}}'
    )


class _Link(NamedTuple):
    """What a timeline entry needs from the steps around it."""

    step: int
    trace_id: str
    parent_trace_id: str | None
    diff: str
    """The entry's state_diff, as JSON."""


class _Differ:
    """Diffs each state with the one before, in step order; the first with an empty state."""

    def __init__(self) -> None:
        self._previous: Mapping[str, Any] = {}

    def next(self, state: Mapping[str, Any]) -> str:
        previous, self._previous = self._previous, state
        if state == previous:  # cheap, and many steps leave the state as it was
            return _NO_CHANGES
        return to_json(state_diff(previous, state)._asdict()).decode()


_NO_CHANGES = '{"added":[],"changed":[],"removed":[]}'


def _from_json_reader(reader: StepJsonReader, session_id: str) -> tuple[list[str], list[_Link]]:
    """Entries as JSON text and what each needs from its neighbours, from two reads.

    A step written between the two reads is left out; it shows on the next request.
    """
    differ = _Differ()
    links_by_index: dict[int, _Link] = {}
    for text in reader.list_steps_json(session_id, _LINK_FIELDS):
        fields = from_json(text)
        index = fields["step"]
        links_by_index[index] = _Link(
            index, fields["trace_id"], fields["parent_trace_id"], differ.next(fields["state"])
        )
    entries: list[str] = []
    links: list[_Link] = []
    for entry in reader.list_steps_json(session_id, TIMELINE_FIELDS):
        # Every entry starts with {"step":<index>, as TIMELINE_FIELDS puts "step" first.
        index = int(entry[len(_STEP_PREFIX) : entry.index(",", len(_STEP_PREFIX))])
        link = links_by_index.get(index)
        if link is not None:
            entries.append(entry)
            links.append(link)
    return entries, links


def _from_models(steps: Sequence[Step]) -> tuple[list[str], list[_Link]]:
    differ = _Differ()
    entries = [step_json(step, TIMELINE_FIELDS) for step in steps]
    links = [
        _Link(step.step_index, step.trace_id, step.parent_trace_id, differ.next(step.state))
        for step in steps
    ]
    return entries, links
