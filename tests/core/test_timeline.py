"""The text views of agentsession._timeline: session table and step timeline."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentsession import SessionTracker, SQLiteBackend
from agentsession._models import ModelUsage, SessionPage, SessionSummary, Step, ToolCall
from agentsession._timeline import (
    BAR_WIDTH,
    WIDTH,
    render_session,
    render_session_list,
    render_timeline,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SESSION_ID = "0190a1b2-3c4d-7e8f-9a0b-c1d2e3f4a5b6"
BAR = re.compile(rf"\|([ =x-]{{{BAR_WIDTH}}})\|")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_step(index: int, start_s: float, duration_s: float, **fields: Any) -> Step:
    fields.setdefault("trace_id", f"trace-{index}")
    return Step(
        session_id=fields.pop("session_id", SESSION_ID),
        step_index=index,
        step_id=f"step-{index}",
        started_at=T0 + timedelta(seconds=start_s),
        ended_at=T0 + timedelta(seconds=start_s + duration_s),
        duration_ms=duration_s * 1000,
        **fields,
    )


def make_summary(steps: list[Step], **fields: Any) -> SessionSummary:
    end = max((s.ended_at for s in steps), default=T0)
    values: dict[str, Any] = {
        "session_id": SESSION_ID,
        "status": "completed",
        "started_at": T0,
        "ended_at": end,
        "duration_ms": (end - T0) / timedelta(milliseconds=1),
        "last_activity_at": end,
        "total_steps": len(steps),
    }
    values.update(fields)
    return SessionSummary(**values)


def step_block(text: str, index: int) -> list[str]:
    """The main line of step ``index`` and the detail lines under it."""
    lines = text.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("#"))
    starts = [n for n in range(header + 1, len(lines)) if BAR.search(lines[n])]
    for pos, n in enumerate(starts):
        if lines[n].split()[0] == str(index):
            end = starts[pos + 1] if pos + 1 < len(starts) else len(lines)
            return lines[n:end]
    raise AssertionError(f"no line for step {index} in:\n{text}")


def bar_of(line: str) -> str:
    match = BAR.search(line)
    assert match is not None, line
    return match.group(1)


def state_tokens(block: list[str]) -> list[str]:
    state = [line for line in block if line.split()[0] == "state"]
    assert len(state) == 1, block
    return state[0].split()[1:]


def test_bars_scale_with_duration_and_sit_at_their_start_time() -> None:
    """Bars are as long as their step's share of the session and placed where it began."""
    steps = [make_step(0, 0, 5), make_step(1, 5, 10), make_step(2, 15, 15)]
    text = render_timeline(make_summary(steps), steps)

    bars = [bar_of(step_block(text, i)[0]) for i in range(3)]

    assert [bar.count("=") for bar in bars] == [5, 10, 15]
    assert [bar.index("=") for bar in bars] == [0, 5, 15]


def test_even_a_very_short_step_gets_one_cell() -> None:
    """A step far shorter than one cell of the axis is still drawn."""
    steps = [make_step(0, 0, 600), make_step(1, 600, 0.001)]
    text = render_timeline(make_summary(steps), steps)

    assert bar_of(step_block(text, 1)[0]).count("=") == 1


def test_state_keys_are_marked_added_changed_and_removed() -> None:
    """Keys are marked + (new), ~ (changed) and - (gone) against the previous step's state."""
    steps = [
        make_step(0, 0, 1, state={"query": "hi", "plan": [1]}),
        make_step(1, 1, 1, state={"query": "hi", "plan": [1, 2], "draft": "x"}),
        make_step(2, 2, 1, state={"plan": [1, 2]}),
    ]
    text = render_timeline(make_summary(steps), steps)

    assert state_tokens(step_block(text, 0)) == ["+query", "+plan"]
    assert state_tokens(step_block(text, 1)) == ["query", "~plan", "+draft"]
    assert state_tokens(step_block(text, 2)) == ["plan", "-query", "-draft"]


def test_steps_nest_under_the_step_whose_trace_they_continue() -> None:
    """A child follows its parent, indented, even when another step came between them."""
    steps = [
        make_step(0, 0, 1),
        make_step(1, 1, 1),
        make_step(2, 2, 1, parent_trace_id="trace-0"),
        make_step(3, 3, 1, parent_trace_id="trace-2"),
    ]
    text = render_timeline(make_summary(steps), steps)

    step_lines = [line for line in text.splitlines() if BAR.search(line)]
    order = [line.split()[0] for line in step_lines]
    indents = [len(line) - len(line.lstrip()) for line in step_lines]
    assert order == ["0", "2", "3", "1"]
    assert indents == [0, 2, 4, 0]
    bar_columns = {line.index("|") for line in step_lines}
    assert len(bar_columns) == 1, "nesting must not shift the time axis"


def test_parent_links_forming_a_cycle_still_show_every_step_once() -> None:
    """Steps that name each other as parent are each shown exactly once."""
    steps = [
        make_step(0, 0, 1, parent_trace_id="trace-1"),
        make_step(1, 1, 1, parent_trace_id="trace-0"),
    ]
    text = render_timeline(make_summary(steps), steps)

    order = [line.split()[0] for line in text.splitlines() if BAR.search(line)]
    assert sorted(order) == ["0", "1"]


def test_failed_step_shows_its_error_on_one_line() -> None:
    """A failed step has an x bar, a failed status and its error, newlines folded."""
    steps = [
        make_step(0, 0, 1),
        make_step(1, 1, 1, status="failed", error="RateLimitError: slow down\n  retry later"),
    ]
    text = render_timeline(make_summary(steps, status="failed", error_count=1), steps)

    main, *details = step_block(text, 1)
    assert "x" in bar_of(main)
    assert main.rstrip().endswith("failed")
    assert any(
        d.split() == ["error", "RateLimitError:", "slow", "down", "retry", "later"] for d in details
    )


def test_long_error_is_cut_to_the_width() -> None:
    """An error longer than the line ends with an ellipsis within WIDTH columns."""
    steps = [make_step(0, 0, 1, status="failed", error="Boom " + "x" * 500)]
    text = render_timeline(make_summary(steps), steps)

    error_line = next(line for line in text.splitlines() if line.split()[:1] == ["error"])
    assert error_line.endswith("…")
    assert len(error_line) == WIDTH


def test_tool_calls_are_listed_under_their_step() -> None:
    """Each tool call shows its name, duration and error, under the step that made it."""
    calls = (
        ToolCall(name="search_web", duration_ms=340),
        ToolCall(name="fetch_page", duration_ms=1200, error="TimeoutError: read timed out"),
    )
    steps = [make_step(0, 0, 1, tool_calls=calls), make_step(1, 1, 1)]
    text = render_timeline(make_summary(steps), steps)

    tools = [line.split() for line in step_block(text, 0) if line.split()[0] == "tool"]
    assert tools == [
        ["tool", "search_web", "340ms"],
        ["tool", "fetch_page", "1.2s", "error:", "TimeoutError:", "read", "timed", "out"],
    ]
    assert not any(line.split()[0] == "tool" for line in step_block(text, 1))


def test_step_line_shows_model_duration_tokens_and_status() -> None:
    """The step's line carries its model, duration, token count and status."""
    steps = [make_step(0, 0, 2.5, model="gpt-4o-mini", input_tokens=300, output_tokens=50)]
    text = render_timeline(make_summary(steps), steps)

    main = step_block(text, 0)[0]
    assert main.split()[-4:] == ["gpt-4o-mini", "2.5s", "350", "completed"]


def test_header_summarises_the_session() -> None:
    """The header names the session, its people, counts, tokens, cost, models and lineage."""
    steps = [make_step(0, 0, 1, model="gpt-4o")]
    summary = make_summary(
        steps,
        status="failed",
        end_reason="rate limited",
        user_ids=["alice", "bob"],
        error_count=1,
        dropped_steps=3,
        input_tokens=1200,
        output_tokens=34,
        total_tokens=1234,
        cost_usd=0.0123,
        usage={"gpt-4o": ModelUsage(steps=1, total_tokens=1234, cost_usd=0.0123)},
        tags=["prod", "beta"],
        environment="staging",
        parent_session_id="parent-session-42",
        parent_trace_id="abc123",
    )
    fields = {}
    for line in render_timeline(summary, steps).split("\n\n")[0].splitlines():
        label, _, value = line.partition(" ")
        fields[label] = value.strip()

    assert fields["session"] == SESSION_ID
    assert fields["status"] == "failed (rate limited)"
    assert fields["users"] == "alice, bob"
    assert fields["started"] == "2024-05-01 12:00:00.000 UTC"
    assert fields["duration"].startswith("1.0s")
    assert fields["steps"] == "1 recorded, 1 failed, 3 dropped"
    assert fields["tokens"] == "1,200 in, 34 out, 1,234 total"
    assert fields["cost"] == "$0.0123"
    assert fields["models"].split() == ["gpt-4o", "1", "step", "1,234", "tokens", "$0.0123"]
    assert fields["tags"] == "prod, beta"
    assert fields["environment"] == "staging"
    assert fields["parent"] == "parent-session-42 (trace abc123)"


def test_session_without_steps_says_so() -> None:
    """An empty session renders its header and a note instead of a timeline."""
    text = render_timeline(make_summary([]), [])
    assert "No steps recorded." in text


def test_long_ids_models_and_keys_stay_within_the_width() -> None:
    """Nothing from recorded data pushes any line past WIDTH columns."""
    long_id = "s" * 199
    steps = [
        make_step(
            i,
            i,
            1,
            session_id=long_id,
            model="m" * 150,
            parent_trace_id=f"trace-{i - 1}" if i else None,
            state={f"key-{'k' * 80}-{n}": n for n in range(i * 20)},
            tool_calls=(ToolCall(name="t" * 150, duration_ms=5, error="e" * 300),),
            status="failed" if i % 3 == 0 else "completed",
            error="e" * 300 if i % 3 == 0 else None,
        )
        for i in range(12)
    ]
    summary = make_summary(
        steps,
        session_id=long_id,
        user_ids=["u" * 150, "v" * 150],
        tags=["t" * 120],
        usage={"m" * 150: ModelUsage(steps=12)},
        parent_session_id="p" * 199,
        parent_trace_id="f" * 32,
    )
    page = SessionPage(sessions=[summary, make_summary(steps)], total=2)

    for text in (render_timeline(summary, steps), render_session_list(page)):
        too_wide = [line for line in text.splitlines() if len(line) > WIDTH]
        assert too_wide == []
    assert long_id in "".join(render_timeline(summary, steps).split())


def test_colours_only_when_asked_and_never_change_the_layout() -> None:
    """No escape codes by default; with colour on, stripping them gives the same text."""
    steps = [make_step(0, 0, 1, state={"a": 1}), make_step(1, 1, 1, status="failed", error="e")]
    summary = make_summary(steps)
    page = SessionPage(sessions=[summary], total=1)

    for plain, coloured in [
        (render_timeline(summary, steps), render_timeline(summary, steps, color=True)),
        (render_session_list(page), render_session_list(page, color=True)),
    ]:
        assert "\x1b" not in plain
        assert "\x1b[" in coloured
        assert ANSI.sub("", coloured) == plain


def test_control_characters_in_data_cannot_reach_the_terminal() -> None:
    """Escape codes and newlines recorded in data are replaced, keeping one step per line."""
    steps = [make_step(0, 0, 1, model="evil\x1b[2Jmodel\nx", state={"k\x1b[31m": 1})]
    text = render_timeline(make_summary(steps), steps)

    assert "\x1b" not in text
    assert len(step_block(text, 0)) == 2


def test_session_list_shows_one_row_per_session() -> None:
    """Each session is a row with its id, users, status, counts and start time."""
    steps = [make_step(0, 0, 1.5)]
    first = make_summary(
        steps, user_ids=["alice"], total_tokens=12_345, cost_usd=0.5, status="in_progress"
    )
    second = make_summary(steps, session_id="user_7_conv_2", started_at=T0 - timedelta(days=1))
    text = render_session_list(SessionPage(sessions=[first, second], total=5, next_cursor="CUR"))

    lines = text.splitlines()
    assert lines[0].split() == [
        "SESSION",
        "USERS",
        "STATUS",
        "STEPS",
        "TIME",
        "TOKENS",
        "COST",
        "STARTED",
        "(UTC)",
    ]
    assert lines[1].split() == [
        SESSION_ID,
        "alice",
        "in_progress",
        "1",
        "1.5s",
        "12.3k",
        "$0.5000",
        "2024-05-01",
        "12:00",
    ]
    assert lines[2].split()[:3] == ["user_7_conv_2", "-", "completed"]
    assert lines[2].split()[-2:] == ["2024-04-30", "12:00"]
    assert lines[3] == "2 of 5 sessions"
    assert lines[4] == "next page: --cursor CUR"


def test_session_list_cuts_long_ids_to_a_prefix() -> None:
    """An id too long for the table keeps its start (usable as a prefix) and ends in '…'."""
    long_id = "user_" + "x" * 150
    page = SessionPage(sessions=[make_summary([], session_id=long_id)], total=1)

    row = render_session_list(page).splitlines()[1]
    shown = row.split()[0]
    assert shown.endswith("…")
    assert long_id.startswith(shown[:-1])
    assert len(row) <= WIDTH


def test_empty_session_list_says_so() -> None:
    """A page without sessions renders a short note."""
    assert render_session_list(SessionPage(sessions=[], total=0)) == "No sessions found.\n"


def test_render_session_reads_back_what_a_tracker_recorded(tmp_path: Path) -> None:
    """render_session waits for the writer and draws the steps stored in the tracker's backend."""
    backend = SQLiteBackend(tmp_path / "sessions.db")
    with SessionTracker("render-me-0001", backend=backend) as session:
        session.set_state("city", "Paris")
        with session.begin_step(model="gpt-4o-mini") as step:
            step.end("hi", input_tokens=3, output_tokens=2)
    text = render_session(session)
    assert "render-me-0001" in text
    assert re.search(r"^0\s.*gpt-4o-mini.*completed", text, re.MULTILINE)
    assert "+city" in text


def test_render_session_refuses_a_write_only_backend() -> None:
    """A backend that cannot be read back is named in a TypeError, not a crash elsewhere."""

    class WriteOnly:
        def write(self, events: Any) -> None: ...
        def flush(self) -> None: ...
        def close(self) -> None: ...

    session = SessionTracker(backend=WriteOnly())
    with pytest.raises(TypeError, match="WriteOnly cannot be read back"):
        render_session(session)
