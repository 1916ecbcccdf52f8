"""Generated sessions for the explorer tests, with every feature the explorer shows.

Sixty sessions ``s-000`` to ``s-059``, one minute apart from T0: users ``u0``-``u2`` in turn,
tag ``travel`` on odd ones, every fifth one never ended (``in_progress``), session 7 failed,
scores on every fourth. Session ``agent-run`` has nested steps, a failed step, tool calls and a
state that gains, changes and loses keys; ``tricky/id 1`` has a slash and a space in its id.
``hostile_sessions`` (not in the shared store) holds HTML in every field, and the ids "." and "..".
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from agentsession import (
    Score,
    SessionEnded,
    SessionEvent,
    SessionStarted,
    SQLiteBackend,
    Step,
    ToolCall,
)

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
SESSIONS = 60
NESTED = "agent-run"
TRICKY = "tricky/id 1"
MARKUP = "<img src=x onerror=window.__xss=1>"
"""HTML that runs a script if a page ever puts recorded text in as markup."""
HOSTILE = "xss-" + MARKUP
DOT_IDS = (".", "..")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(session_id: str, index: int, start: datetime, **fields: object) -> Step:
    """A 500 ms gpt-4o-mini step of 100 + 20 tokens unless ``fields`` say otherwise."""
    values: dict[str, object] = {
        "step_id": f"span-{index}",
        "trace_id": f"{session_id}-trace-{index}",
        "started_at": start,
        "ended_at": start + timedelta(milliseconds=500),
        "duration_ms": 500.0,
        "model": "gpt-4o-mini",
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "cost_usd": 0.001,
        **fields,
    }
    return Step(session_id=session_id, step_index=index, **values)  # type: ignore[arg-type]


def listed_sessions() -> list[SessionEvent]:
    events: list[SessionEvent] = []
    for n in range(SESSIONS):
        session_id = f"s-{n:03d}"
        start = at(60 * n)
        events.append(
            SessionStarted(
                session_id=session_id,
                started_at=start,
                user_id=f"u{n % 3}",
                tags=("travel",) if n % 2 else (),
                environment="prod",
            )
        )
        for index in range(3):
            events.append(step(session_id, index, start + timedelta(seconds=index)))
        if n % 5 != 0:
            status = "failed" if n == 7 else "completed"
            events.append(
                SessionEnded(
                    session_id=session_id, ended_at=start + timedelta(seconds=5), status=status
                )
            )
        if n % 4 == 0:
            events.append(
                Score(session_id=session_id, name="quality", value=n / 100, created_at=start)
            )
            events.append(
                Score(session_id=session_id, name="resolved", value=n % 8 == 0, created_at=start)
            )
    return events


def nested_session() -> list[SessionEvent]:
    """Steps 0-5; 2 and 3 nested under 1, 4 under 3; the state changes as ``STATES`` says."""
    start = at(60 * SESSIONS)
    parents = {2: 1, 3: 1, 4: 3}
    events: list[SessionEvent] = [
        SessionStarted(
            session_id=NESTED, started_at=start, user_id="alice", tags=("demo",), environment="dev"
        )
    ]
    for index, state in enumerate(STATES):
        parent = parents.get(index)
        events.append(
            step(
                NESTED,
                index,
                start + timedelta(seconds=index * 2),
                duration_ms=1000.0 + 200 * index,
                model="claude-3-5-sonnet" if index % 2 else "gpt-4o-mini",
                parent_trace_id=None if parent is None else f"{NESTED}-trace-{parent}",
                state=state,
                status="failed" if index == 4 else "completed",
                error="RateLimitError: slow down" if index == 4 else None,
                input=[{"role": "user", "content": f"question {index}"}],
                output={"role": "assistant", "content": f"answer {index}"},
                tool_calls=(
                    (ToolCall(name="search_flights", input={"to": "Paris"}, output=[1, 2, 3]),)
                    if index == 2
                    else ()
                ),
            )
        )
    events.append(
        SessionEnded(session_id=NESTED, ended_at=start + timedelta(seconds=15), status="completed")
    )
    events.append(Score(session_id=TRICKY, name="quality", value="good", created_at=start))
    events.append(step(TRICKY, 0, start))
    return events


STATES: list[dict[str, object]] = [
    {"query": "Paris"},
    {"query": "Paris", "plan": ["search", "book"]},
    {"query": "Paris", "plan": ["search", "book"], "results": 3},
    {"query": "Paris", "results": 4},
    {"query": "Paris", "results": 4},
    {"query": "Paris", "results": 4, "booking": {"id": "B1"}},
]
"""The nested session's state at each step: 1 adds plan, 2 adds results, 3 changes results
and removes plan, 4 changes nothing, 5 adds booking."""


def hostile_sessions() -> list[SessionEvent]:
    """``HOSTILE``, with ``MARKUP`` in every text the page shows, and the sessions "." and ".."."""
    start = at(60 * (SESSIONS + 1))
    events: list[SessionEvent] = [
        SessionStarted(
            session_id=HOSTILE,
            started_at=start,
            user_id=MARKUP,
            tags=(MARKUP,),
            environment=MARKUP,
        ),
        step(
            HOSTILE,
            0,
            start,
            model=MARKUP,
            name=MARKUP,
            status="failed",
            error=MARKUP,
            state={MARKUP: MARKUP},
            input=[{"role": "user", "content": MARKUP}],
            output={MARKUP: MARKUP},
            tool_calls=(ToolCall(name=MARKUP, input=MARKUP, output=MARKUP, error=MARKUP),),
            metadata={MARKUP: MARKUP},
        ),
        Score(session_id=HOSTILE, name=MARKUP, value=MARKUP, comment=MARKUP, created_at=start),
    ]
    for n, session_id in enumerate(DOT_IDS):
        events.append(step(session_id, 0, start + timedelta(seconds=n + 1), model=f"model-{n}"))
    return events


def build_store(path: Path) -> None:
    backend = SQLiteBackend(path)
    try:
        backend.write([*listed_sessions(), *nested_session()])
    finally:
        backend.close()
