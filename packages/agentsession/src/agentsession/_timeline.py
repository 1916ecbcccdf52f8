"""Plain-text views of recorded sessions for a terminal: a session table and a step timeline.

Everything here but :func:`render_session` is a pure function of the models, so the CLI, tests
and notebooks render the same text. Lines fit in :data:`WIDTH` columns; colours are ANSI codes
added only when asked for.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import _text as fmt
from ._models import Score, SessionPage, SessionSummary, Step
from ._replay import state_diff, step_tree
from ._text import WIDTH
from ._worker import flush_all
from .backends._base import SessionReader

if TYPE_CHECKING:
    from ._tracker import SessionTracker

__all__ = ["BAR_WIDTH", "WIDTH", "render_session", "render_session_list", "render_timeline"]

BAR_WIDTH = 30
"""Cells of the time axis each step's bar is drawn on."""

_LABEL_WIDTH = 13
_MAX_DEPTH = 6
"""Deeper nesting is drawn at this depth so the columns stay in place."""
_MAX_KEY = 40
_MAX_KEY_LINES = 4
_BAR_FILL = {"completed": "=", "failed": "x", "cancelled": "-"}
_MICROSECOND = timedelta(microseconds=1)

_MARK_STYLE = {"+": "green", "~": "yellow", "-": "red"}


def render_session_list(page: SessionPage, *, color: bool = False) -> str:
    """A table of one page of sessions, newest first, with a hint for fetching the next page."""
    if not page.sessions:
        return "No sessions found.\n"
    columns = [
        fmt.Column("SESSION", shrink_to=12),
        fmt.Column("USERS", shrink_to=5),
        fmt.Column("STATUS", status=True),
        # Short headers and one space around right-aligned numbers keep a UUIDv7 session id
        # whole even next to "in_progress": a row then needs 99 columns.
        fmt.Column("STEPS", right=True, gap=1),
        fmt.Column("TIME", right=True, gap=1),
        fmt.Column("TOKENS", right=True, gap=1),
        fmt.Column("COST", right=True, gap=1),
        fmt.Column("STARTED (UTC)", gap=1),
    ]
    rows = [
        [
            fmt.printable(s.session_id),
            fmt.printable(", ".join(s.user_ids)) or "-",
            s.status,
            str(s.total_steps),
            fmt.duration(_session_duration_ms(s)),
            fmt.count(s.total_tokens),
            fmt.cost(s.cost_usd),
            fmt.when(s.started_at, precise=False),
        ]
        for s in page.sessions
    ]
    lines = fmt.table(columns, rows, color)
    lines.append(f"{len(page.sessions)} of {page.total} sessions")
    if page.next_cursor is not None:
        lines.append(f"next page: --cursor {page.next_cursor}")
    return "\n".join(lines) + "\n"


def render_timeline(
    summary: SessionSummary, steps: Sequence[Step], *, color: bool = False, header: bool = True
) -> str:
    """The session's summary, then its steps on a shared time axis, nested under their parents.

    ``header=False`` puts one line about the session in place of the full summary.
    """
    lines = _summary_lines(summary, color) if header else [_summary_line(summary, color)]
    lines.append("")
    if steps:
        lines.extend(_step_lines(summary, steps, color))
    else:
        lines.append("No steps recorded.")
    return "\n".join(lines) + "\n"


def render_session(session: SessionTracker, *, color: bool = False, timeout: float = 10.0) -> str:
    """The timeline of what ``session`` has recorded, read back from its backend.

    Waits up to ``timeout`` seconds for the background writer first. For a script's last line
    (``print(render_session(session))``). Raises TypeError for a write-only backend (OTLP) and
    LookupError when the backend holds nothing of the session.
    """
    flush_all(timeout)
    store = session.backend
    if not isinstance(store, SessionReader):
        raise TypeError(f"{type(store).__name__} cannot be read back: it is write-only")
    summary = store.get_session(session.session_id)
    if summary is None:
        raise LookupError(f"session {session.session_id!r} is not in {type(store).__name__}")
    return render_timeline(summary, store.list_steps(session.session_id), color=color)


# -- the summary header -------------------------------------------------------------------------


def _summary_line(summary: SessionSummary, color: bool) -> str:
    """Session id, status, steps, duration and tokens on one line, the id cut to fit."""
    facts = [
        fmt.plural(summary.total_steps, "step"),
        fmt.duration(_session_duration_ms(summary)),
        f"{fmt.count(summary.total_tokens)} tokens",
    ]
    room = WIDTH - len(fmt.GAP.join(["", summary.status, *facts]))
    return fmt.GAP.join(
        [
            fmt.paint(fmt.fit(fmt.printable(summary.session_id), room), "bold", color),
            fmt.paint(summary.status, fmt.STATUS_STYLE.get(summary.status), color),
            *facts,
        ]
    )


def _summary_lines(summary: SessionSummary, color: bool) -> list[str]:
    status: str = summary.status
    if summary.end_reason:
        status += f" ({fmt.one_line(summary.end_reason)})"
    if summary.ended_at is not None:
        duration = f"{fmt.duration(summary.duration_ms)} (ended {fmt.when(summary.ended_at)} UTC)"
    else:
        idle_since = fmt.when(summary.last_activity_at)
        duration = (
            f"{fmt.duration(_session_duration_ms(summary))} so far (last activity {idle_since} UTC)"
        )
    parent = summary.parent_session_id or "-"
    if summary.parent_trace_id:
        parent += f" (trace {summary.parent_trace_id})"
    lines: list[str] = []
    for label, value, style in [
        ("session", summary.session_id, "bold"),
        ("status", status, fmt.STATUS_STYLE.get(summary.status)),
        ("users", ", ".join(summary.user_ids) or "-", None),
        ("started", f"{fmt.when(summary.started_at)} UTC", None),
        ("duration", duration, None),
        (
            "steps",
            f"{summary.total_steps} recorded, {summary.error_count} failed, "
            f"{summary.dropped_steps} dropped",
            "red" if summary.error_count else None,
        ),
        (
            "tokens",
            f"{summary.input_tokens:,} in, {summary.output_tokens:,} out, "
            f"{summary.total_tokens:,} total",
            None,
        ),
        ("cost", fmt.cost(summary.cost_usd), None),
        ("scores", ", ".join(_score_text(score) for score in summary.scores) or "-", None),
        ("models", "", None),
        ("tags", ", ".join(summary.tags) or "-", None),
        ("environment", summary.environment or "-", None),
        ("parent", parent, None),
    ]:
        if label == "models":
            lines.extend(_model_lines(summary, color))
        else:
            lines.extend(_field(label, value, style, color))
    return lines


def _score_text(score: Score) -> str:
    value = score.value
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = repr(value)
    return f"{score.name}={shown}"


def _field(label: str, value: str, style: str | None, color: bool) -> list[str]:
    """``label  value``, the value wrapped (long words cut) so no line passes WIDTH."""
    chunks = textwrap.wrap(
        fmt.printable(value),
        width=WIDTH - _LABEL_WIDTH,
        break_long_words=True,
        break_on_hyphens=False,
    ) or ["-"]
    head = fmt.paint(label.ljust(_LABEL_WIDTH), "dim", color)
    pad = " " * _LABEL_WIDTH
    return [(head if i == 0 else pad) + fmt.paint(c, style, color) for i, c in enumerate(chunks)]


def _model_lines(summary: SessionSummary, color: bool) -> list[str]:
    if not summary.usage:
        return _field("models", "-", None, color)
    rows = [
        [
            fmt.printable(model),
            fmt.plural(u.steps, "step"),
            fmt.plural(u.total_tokens, "token"),
            fmt.cost(u.cost_usd),
        ]
        for model, u in summary.usage.items()
    ]
    columns = [
        fmt.Column("", shrink_to=8),
        fmt.Column("", right=True),
        fmt.Column("", right=True),
        fmt.Column("", right=True),
    ]
    table = fmt.table(columns, rows, color, width=WIDTH - _LABEL_WIDTH, header=False)
    head = fmt.paint("models".ljust(_LABEL_WIDTH), "dim", color)
    return [(head if i == 0 else " " * _LABEL_WIDTH) + row for i, row in enumerate(table)]


# -- the steps ----------------------------------------------------------------------------------


def _step_lines(summary: SessionSummary, steps: Sequence[Step], color: bool) -> list[str]:
    ordered = sorted(steps, key=lambda s: s.step_index)
    placed, _ = step_tree([(s.trace_id, s.parent_trace_id) for s in ordered])
    start, span_us = _time_axis(summary, ordered)

    labels = {i: "  " * min(depth, _MAX_DEPTH) + str(ordered[i].step_index) for i, depth in placed}
    models = [fmt.printable(s.model or s.name or "-") for s in ordered]
    durations = [fmt.duration(s.duration_ms) for s in ordered]
    tokens = [fmt.count(_step_tokens(s)) for s in ordered]
    label_w = max(1, *(len(label) for label in labels.values()))
    duration_w = max(len("DURATION"), *(len(d) for d in durations))
    tokens_w = max(len("TOKENS"), *(len(t) for t in tokens))
    status_w = max(len("STATUS"), *(len(s.status) for s in ordered))
    fixed = label_w + BAR_WIDTH + 2 + duration_w + tokens_w + status_w + 5 * len(fmt.GAP)
    model_w = max(5, min(max(len("MODEL"), *(len(m) for m in models)), WIDTH - fixed))

    axis = "0s".ljust(BAR_WIDTH + 2 - 8) + fmt.duration(span_us / 1000).rjust(8)
    header = fmt.GAP.join(
        [
            "#".ljust(label_w),
            axis,
            "MODEL".ljust(model_w),
            "DURATION".rjust(duration_w),
            "TOKENS".rjust(tokens_w),
            "STATUS",
        ]
    )
    lines = [fmt.paint(header, "dim", color)]
    detail_indent = " " * (label_w + len(fmt.GAP))
    detail_width = WIDTH - len(detail_indent)
    diffs = _state_diffs(ordered)
    for i, _depth in placed:
        step = ordered[i]
        bar = _bar(step, start, span_us)
        fill_style = "red" if step.status == "failed" else None
        row = [
            labels[i].ljust(label_w),
            "|" + fmt.paint(bar, fill_style, color) + "|",
            fmt.fit(models[i], model_w).ljust(model_w),
            durations[i].rjust(duration_w),
            tokens[i].rjust(tokens_w),
            fmt.paint(step.status, fmt.STATUS_STYLE.get(step.status), color),
        ]
        lines.append(fmt.GAP.join(row))
        details = _step_details(step, diffs[i], detail_width, color)
        lines.extend(detail_indent + d for d in details)
    return lines


def _time_axis(summary: SessionSummary, ordered: Sequence[Step]) -> tuple[datetime, int]:
    """Start of the axis and its length in microseconds (at least 1)."""
    start = min(fmt.utc(summary.started_at), *(fmt.utc(s.started_at) for s in ordered))
    end = max(
        fmt.utc(s.started_at) + timedelta(milliseconds=max(s.duration_ms, 0)) for s in ordered
    )
    if summary.ended_at is not None:
        end = max(end, fmt.utc(summary.ended_at))
    return start, max(1, (end - start) // _MICROSECOND)


def _bar(step: Step, start: datetime, span_us: int) -> str:
    """BAR_WIDTH cells with the step's run filled; integer maths so equal spans get equal cells."""
    offset = (fmt.utc(step.started_at) - start) // _MICROSECOND
    end = offset + max(0, round(step.duration_ms * 1000))
    first = min(max(0, offset * BAR_WIDTH // span_us), BAR_WIDTH - 1)
    last = min(max(first + 1, -(-end * BAR_WIDTH // span_us)), BAR_WIDTH)
    fill = _BAR_FILL.get(step.status, "=")
    return " " * first + fill * (last - first) + " " * (BAR_WIDTH - last)


def _step_tokens(step: Step) -> int | None:
    if step.total_tokens is not None:
        return step.total_tokens
    if step.input_tokens is None and step.output_tokens is None:
        return None
    return (step.input_tokens or 0) + (step.output_tokens or 0)


def _state_diffs(ordered: Sequence[Step]) -> list[list[tuple[str, str]]]:
    """For each step, its state keys marked against the step before (the first against {}):
    ``+`` added, ``~`` changed, "" the same, in the state's order, then ``-`` removed."""
    previous: Mapping[str, Any] = {}
    diffs = []
    for step in ordered:
        diff = state_diff(previous, step.state)
        added, changed = set(diff.added), set(diff.changed)
        marked = [("+" if k in added else "~" if k in changed else "", k) for k in step.state]
        marked.extend(("-", key) for key in diff.removed)
        diffs.append(marked)
        previous = step.state
    return diffs


def _step_details(
    step: Step, diff: Sequence[tuple[str, str]], width: int, color: bool
) -> list[str]:
    """The lines under a step: its state keys, error and tool calls."""
    lines: list[str] = []
    if diff:
        lines.extend(_key_lines(diff, width, color))
    if step.status == "failed" or step.error:
        error = fmt.one_line(step.error or "failed without an error message")
        lines.append(_detail("error", fmt.fit(error, width - 7), "red", color))
    for call in step.tool_calls:
        parts = [fmt.printable(call.name), fmt.duration(call.duration_ms)]
        if call.error:
            parts.append("error: " + fmt.one_line(call.error))
        text = fmt.fit(fmt.GAP.join(parts), width - 7)
        lines.append(_detail("tool", text, "red" if call.error else None, color))
    return lines


def _detail(label: str, text: str, style: str | None, color: bool) -> str:
    return fmt.paint(label.ljust(6), "dim", color) + " " + fmt.paint(text, style, color)


def _key_lines(diff: Sequence[tuple[str, str]], width: int, color: bool) -> list[str]:
    """State keys wrapped onto a few lines; keys past the last line are counted, not shown."""
    room = width - 7
    more_room = len(f"{fmt.GAP}… {len(diff)} more")
    rows: list[list[str]] = [[]]
    used = 0
    for n, (mark, key) in enumerate(diff):
        token = mark + fmt.fit(fmt.printable(key), _MAX_KEY)
        needed = len(token) + (len(fmt.GAP) if rows[-1] else 0)
        last_row = len(rows) == _MAX_KEY_LINES
        if rows[-1] and used + needed > room - (more_room if last_row else 0):
            if last_row:
                rows[-1].append(f"… {len(diff) - n} more")
                break
            rows.append([])
            used, needed = 0, len(token)
        rows[-1].append(fmt.paint(token, _MARK_STYLE.get(mark), color))
        used += needed
    first, *rest = [fmt.GAP.join(row) for row in rows]
    return [_detail("state", first, None, color), *(" " * 7 + row for row in rest)]


def _session_duration_ms(summary: SessionSummary) -> float:
    """The recorded duration, or time from start to last activity for a session never ended."""
    if summary.duration_ms is not None:
        return summary.duration_ms
    return (fmt.utc(summary.last_activity_at) - fmt.utc(summary.started_at)) / timedelta(
        milliseconds=1
    )
