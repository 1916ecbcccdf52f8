"""Plain-text views of recorded sessions for a terminal: a session table and a step timeline.

Everything here is a pure function of the models, so the CLI, tests and notebooks render the same
text. Lines fit in :data:`WIDTH` columns; colours are ANSI codes added only when asked for.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from ._models import Score, SessionPage, SessionSummary, Step

__all__ = [
    "BAR_WIDTH",
    "WIDTH",
    "render_session_list",
    "render_timeline",
    "StateDiff",
    "state_diff",
    "step_tree",
]

WIDTH = 100
"""Columns every line fits in, except the ``--cursor`` hint (a cursor cannot be cut and reused)."""
BAR_WIDTH = 30
"""Cells of the time axis each step's bar is drawn on."""

_GAP = "  "
_ELLIPSIS = "…"
_LABEL_WIDTH = 13
_MAX_DEPTH = 6
"""Deeper nesting is drawn at this depth so the columns stay in place."""
_MAX_KEY = 40
_MAX_KEY_LINES = 4
_BAR_FILL = {"completed": "=", "failed": "x", "cancelled": "-"}
_MICROSECOND = timedelta(microseconds=1)

_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}
_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "timed_out": "red",
    "in_progress": "yellow",
    "cancelled": "dim",
}
_MARK_STYLE = {"+": "green", "~": "yellow", "-": "red"}


def render_session_list(page: SessionPage, *, color: bool = False) -> str:
    """A table of one page of sessions, newest first, with a hint for fetching the next page."""
    if not page.sessions:
        return "No sessions found.\n"
    columns = [
        _Column("SESSION", shrink_to=12),
        _Column("USERS", shrink_to=5),
        _Column("STATUS", status=True),
        # Short headers and one space around right-aligned numbers keep a UUIDv7 session id
        # whole even next to "in_progress": a row then needs 99 columns.
        _Column("STEPS", right=True, gap=1),
        _Column("TIME", right=True, gap=1),
        _Column("TOKENS", right=True, gap=1),
        _Column("COST", right=True, gap=1),
        _Column("STARTED (UTC)", gap=1),
    ]
    rows = [
        [
            _printable(s.session_id),
            _printable(", ".join(s.user_ids)) or "-",
            s.status,
            str(s.total_steps),
            _duration(_session_duration_ms(s)),
            _count(s.total_tokens),
            _cost(s.cost_usd),
            _when(s.started_at, precise=False),
        ]
        for s in page.sessions
    ]
    lines = _table(columns, rows, color)
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


# -- the summary header -------------------------------------------------------------------------


def _summary_line(summary: SessionSummary, color: bool) -> str:
    """Session id, status, steps, duration and tokens on one line, the id cut to fit."""
    facts = [
        _plural(summary.total_steps, "step"),
        _duration(_session_duration_ms(summary)),
        f"{_count(summary.total_tokens)} tokens",
    ]
    room = WIDTH - len(_GAP.join(["", summary.status, *facts]))
    return _GAP.join(
        [
            _paint(_fit(_printable(summary.session_id), room), "bold", color),
            _paint(summary.status, _STATUS_STYLE.get(summary.status), color),
            *facts,
        ]
    )


def _summary_lines(summary: SessionSummary, color: bool) -> list[str]:
    status: str = summary.status
    if summary.end_reason:
        status += f" ({_one_line(summary.end_reason)})"
    if summary.ended_at is not None:
        duration = f"{_duration(summary.duration_ms)} (ended {_when(summary.ended_at)} UTC)"
    else:
        idle_since = _when(summary.last_activity_at)
        duration = (
            f"{_duration(_session_duration_ms(summary))} so far (last activity {idle_since} UTC)"
        )
    parent = summary.parent_session_id or "-"
    if summary.parent_trace_id:
        parent += f" (trace {summary.parent_trace_id})"
    lines: list[str] = []
    for label, value, style in [
        ("session", summary.session_id, "bold"),
        ("status", status, _STATUS_STYLE.get(summary.status)),
        ("users", ", ".join(summary.user_ids) or "-", None),
        ("started", f"{_when(summary.started_at)} UTC", None),
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
        ("cost", _cost(summary.cost_usd), None),
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
        _printable(value),
        width=WIDTH - _LABEL_WIDTH,
        break_long_words=True,
        break_on_hyphens=False,
    ) or ["-"]
    head = _paint(label.ljust(_LABEL_WIDTH), "dim", color)
    pad = " " * _LABEL_WIDTH
    return [(head if i == 0 else pad) + _paint(c, style, color) for i, c in enumerate(chunks)]


def _model_lines(summary: SessionSummary, color: bool) -> list[str]:
    if not summary.usage:
        return _field("models", "-", None, color)
    rows = [
        [
            _printable(model),
            _plural(u.steps, "step"),
            _plural(u.total_tokens, "token"),
            _cost(u.cost_usd),
        ]
        for model, u in summary.usage.items()
    ]
    columns = [
        _Column("", shrink_to=8),
        _Column("", right=True),
        _Column("", right=True),
        _Column("", right=True),
    ]
    table = _table(columns, rows, color, width=WIDTH - _LABEL_WIDTH, header=False)
    head = _paint("models".ljust(_LABEL_WIDTH), "dim", color)
    return [(head if i == 0 else " " * _LABEL_WIDTH) + row for i, row in enumerate(table)]


# -- the steps ----------------------------------------------------------------------------------


def _step_lines(summary: SessionSummary, steps: Sequence[Step], color: bool) -> list[str]:
    ordered = sorted(steps, key=lambda s: s.step_index)
    placed, _ = step_tree([(s.trace_id, s.parent_trace_id) for s in ordered])
    start, span_us = _time_axis(summary, ordered)

    labels = {i: "  " * min(depth, _MAX_DEPTH) + str(ordered[i].step_index) for i, depth in placed}
    models = [_printable(s.model or s.name or "-") for s in ordered]
    durations = [_duration(s.duration_ms) for s in ordered]
    tokens = [_count(_step_tokens(s)) for s in ordered]
    label_w = max(1, *(len(label) for label in labels.values()))
    duration_w = max(len("DURATION"), *(len(d) for d in durations))
    tokens_w = max(len("TOKENS"), *(len(t) for t in tokens))
    status_w = max(len("STATUS"), *(len(s.status) for s in ordered))
    fixed = label_w + BAR_WIDTH + 2 + duration_w + tokens_w + status_w + 5 * len(_GAP)
    model_w = max(5, min(max(len("MODEL"), *(len(m) for m in models)), WIDTH - fixed))

    axis = "0s".ljust(BAR_WIDTH + 2 - 8) + _duration(span_us / 1000).rjust(8)
    header = _GAP.join(
        [
            "#".ljust(label_w),
            axis,
            "MODEL".ljust(model_w),
            "DURATION".rjust(duration_w),
            "TOKENS".rjust(tokens_w),
            "STATUS",
        ]
    )
    lines = [_paint(header, "dim", color)]
    detail_indent = " " * (label_w + len(_GAP))
    detail_width = WIDTH - len(detail_indent)
    diffs = _state_diffs(ordered)
    for i, _depth in placed:
        step = ordered[i]
        bar = _bar(step, start, span_us)
        fill_style = "red" if step.status == "failed" else None
        row = [
            labels[i].ljust(label_w),
            "|" + _paint(bar, fill_style, color) + "|",
            _fit(models[i], model_w).ljust(model_w),
            durations[i].rjust(duration_w),
            tokens[i].rjust(tokens_w),
            _paint(step.status, _STATUS_STYLE.get(step.status), color),
        ]
        lines.append(_GAP.join(row))
        details = _step_details(step, diffs[i], detail_width, color)
        lines.extend(detail_indent + d for d in details)
    return lines


def step_tree(
    links: Sequence[tuple[str, str | None]],
) -> tuple[list[tuple[int, int]], dict[int, int]]:
    """Steps nested under their parents: (position, depth) pairs in display order, and parents.

    ``links`` holds each step's (trace_id, parent_trace_id), in step order. A step's parent is
    the first step whose trace_id is its parent_trace_id; the second result maps the position
    of each step that has one to its parent's. Roots come in step order, each followed by its
    children, depth first. A link that would close a cycle is dropped (that of the cycle's
    earliest step), so every step is placed exactly once. Linear in the number of steps.
    """
    first_by_trace: dict[str, int] = {}
    for i, (trace_id, _) in enumerate(links):
        first_by_trace.setdefault(trace_id, i)
    parent: dict[int, int] = {}
    for i, (_, parent_trace_id) in enumerate(links):
        p = first_by_trace.get(parent_trace_id) if parent_trace_id else None
        if p is not None and p != i:
            parent[i] = p
    walked = bytearray(len(links))  # 0: not yet, 1: on the current walk, 2: ends at a root
    for i in range(len(links)):
        path: list[int] = []
        node: int | None = i
        while node is not None and not walked[node]:
            walked[node] = 1
            path.append(node)
            node = parent.get(node)
        if node is not None and walked[node] == 1:  # the walk came back onto itself: a cycle
            del parent[min(path[path.index(node) :])]
        for step in path:
            walked[step] = 2
    children: dict[int, list[int]] = {}
    for child, p in sorted(parent.items()):
        children.setdefault(p, []).append(child)
    placed: list[tuple[int, int]] = []
    stack = [(i, 0) for i in reversed(range(len(links))) if i not in parent]
    while stack:
        i, depth = stack.pop()
        placed.append((i, depth))
        below = children.get(i)
        if below:
            stack.extend([(c, depth + 1) for c in reversed(below)])
    return placed, parent


def _time_axis(summary: SessionSummary, ordered: Sequence[Step]) -> tuple[datetime, int]:
    """Start of the axis and its length in microseconds (at least 1)."""
    start = min(_utc(summary.started_at), *(_utc(s.started_at) for s in ordered))
    end = max(_utc(s.started_at) + timedelta(milliseconds=max(s.duration_ms, 0)) for s in ordered)
    if summary.ended_at is not None:
        end = max(end, _utc(summary.ended_at))
    return start, max(1, (end - start) // _MICROSECOND)


def _bar(step: Step, start: datetime, span_us: int) -> str:
    """BAR_WIDTH cells with the step's run filled; integer maths so equal spans get equal cells."""
    offset = (_utc(step.started_at) - start) // _MICROSECOND
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


class StateDiff(NamedTuple):
    """How a state differs from the one before: its keys added, changed and removed."""

    added: list[str]
    changed: list[str]
    removed: list[str]


def state_diff(previous: Mapping[str, Any], current: Mapping[str, Any]) -> StateDiff:
    """The keys ``current`` added, changed (by ``!=``) or removed, each in its state's order."""
    return StateDiff(
        [key for key in current if key not in previous],
        [key for key, value in current.items() if key in previous and previous[key] != value],
        [key for key in previous if key not in current],
    )


def _step_details(
    step: Step, diff: Sequence[tuple[str, str]], width: int, color: bool
) -> list[str]:
    """The lines under a step: its state keys, error and tool calls."""
    lines: list[str] = []
    if diff:
        lines.extend(_key_lines(diff, width, color))
    if step.status == "failed" or step.error:
        error = _one_line(step.error or "failed without an error message")
        lines.append(_detail("error", _fit(error, width - 7), "red", color))
    for call in step.tool_calls:
        parts = [_printable(call.name), _duration(call.duration_ms)]
        if call.error:
            parts.append("error: " + _one_line(call.error))
        text = _fit(_GAP.join(parts), width - 7)
        lines.append(_detail("tool", text, "red" if call.error else None, color))
    return lines


def _detail(label: str, text: str, style: str | None, color: bool) -> str:
    return _paint(label.ljust(6), "dim", color) + " " + _paint(text, style, color)


def _key_lines(diff: Sequence[tuple[str, str]], width: int, color: bool) -> list[str]:
    """State keys wrapped onto a few lines; keys past the last line are counted, not shown."""
    room = width - 7
    more_room = len(f"{_GAP}… {len(diff)} more")
    rows: list[list[str]] = [[]]
    used = 0
    for n, (mark, key) in enumerate(diff):
        token = mark + _fit(_printable(key), _MAX_KEY)
        needed = len(token) + (len(_GAP) if rows[-1] else 0)
        last_row = len(rows) == _MAX_KEY_LINES
        if rows[-1] and used + needed > room - (more_room if last_row else 0):
            if last_row:
                rows[-1].append(f"… {len(diff) - n} more")
                break
            rows.append([])
            used, needed = 0, len(token)
        rows[-1].append(_paint(token, _MARK_STYLE.get(mark), color))
        used += needed
    first, *rest = [_GAP.join(row) for row in rows]
    return [_detail("state", first, None, color), *(" " * 7 + row for row in rest)]


# -- tables and formatting ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    header: str
    right: bool = False
    shrink_to: int | None = None
    """Narrowest this column may be cut to when the table is too wide; None never cuts it."""
    gap: int = len(_GAP)
    """Spaces before this column (ignored for the first)."""
    status: bool = False
    """Cells are session or step statuses, coloured by what they say."""


def _table(
    columns: Sequence[_Column],
    rows: Sequence[Sequence[str]],
    color: bool,
    *,
    width: int = WIDTH,
    header: bool = True,
) -> list[str]:
    """Aligned rows no wider than ``width``: shrinkable columns are cut, in order, with "…"."""
    widths = [max(len(col.header), *(len(row[i]) for row in rows)) for i, col in enumerate(columns)]
    excess = sum(widths) + sum(col.gap for col in columns[1:]) - width
    for i, col in enumerate(columns):
        if excess <= 0:
            break
        if col.shrink_to is not None and widths[i] > col.shrink_to:
            cut = min(excess, widths[i] - col.shrink_to)
            widths[i] -= cut
            excess -= cut

    def line(cells: Sequence[str], is_header: bool = False) -> str:
        out = []
        for i, (cell, col) in enumerate(zip(cells, columns, strict=True)):
            text = _fit(cell, widths[i])
            text = text.rjust(widths[i]) if col.right else text.ljust(widths[i])
            if i == len(columns) - 1:
                text = text.rstrip()  # before painting: no trailing blanks hidden in a colour
            style = "bold" if is_header else _STATUS_STYLE.get(cell) if col.status else None
            out.append((" " * col.gap if i else "") + _paint(text, style, color))
        return "".join(out)

    lines = [line([c.header for c in columns], is_header=True)] if header else []
    return lines + [line(row) for row in rows]


def _paint(text: str, style: str | None, color: bool) -> str:
    if not color or style is None or not text:
        return text
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


def _printable(text: str) -> str:
    """Control characters (newlines, escape codes) from recorded data would break the layout."""
    return "".join(c if c.isprintable() else " " for c in text)


def _one_line(text: str) -> str:
    return " ".join(_printable(text).split())


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + _ELLIPSIS if width > 0 else ""


def _utc(moment: datetime) -> datetime:
    """Models hold aware UTC times; a naive one is taken to be UTC rather than local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _when(moment: datetime, *, precise: bool = True) -> str:
    utc = _utc(moment)
    if precise:
        return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    return utc.strftime("%Y-%m-%d %H:%M")


def _session_duration_ms(summary: SessionSummary) -> float:
    """The recorded duration, or time from start to last activity for a session never ended."""
    if summary.duration_ms is not None:
        return summary.duration_ms
    return (_utc(summary.last_activity_at) - _utc(summary.started_at)) / timedelta(milliseconds=1)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return str(n)
    if n < 999_950:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _cost(usd: float | None) -> str:
    if usd is None:
        return "-"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"
