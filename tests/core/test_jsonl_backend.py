"""JsonlBackend: one JSON object per event per line, read back by replaying the file."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentsession._models import SessionEnded, SessionEvent, SessionFilter, SessionStarted, Step
from agentsession.backends._jsonl import JsonlBackend
from agentsession.backends._memory import MemoryBackend

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def step(session_id: str, index: int, **fields: Any) -> Step:
    began = T0 + timedelta(seconds=index)
    defaults: dict[str, Any] = {
        "step_id": f"span-{index}",
        "trace_id": "0" * 32,
        "started_at": began,
        "ended_at": began + timedelta(milliseconds=500),
        "duration_ms": 500.0,
        "model": "gpt-4o",
        "input_tokens": 10,
        "cost_usd": 0.5,
        "state": {"n": index},
    }
    return Step(session_id=session_id, step_index=index, **{**defaults, **fields})


EVENTS: list[SessionEvent] = [
    SessionStarted(session_id="a-1", started_at=T0, user_id="u1", tags=("prod",), timeout_s=60),
    step("a-1", 0, input=[{"role": "user", "content": "hi"}], output="hello"),
    step("b-1", 0, user_id="u2"),
    step("a-1", 1, status="failed", model="claude"),
    SessionEnded(session_id="a-1", ended_at=T0 + timedelta(seconds=9), status="completed"),
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "events.jsonl"


def test_reads_equal_the_memory_backends_after_reopening(path: Path) -> None:
    """A backend opened later on the file answers exactly as MemoryBackend given the events."""
    writer = JsonlBackend(path)
    writer.write(EVENTS[:2])
    writer.write(EVENTS[2:])
    writer.close()
    memory = MemoryBackend()
    memory.write(EVENTS)

    reader = JsonlBackend(path)
    for session_id in ("a-1", "b-1", "unknown"):
        assert reader.get_session(session_id) == memory.get_session(session_id)
        assert reader.list_steps(session_id) == memory.list_steps(session_id)
    for filters in (None, SessionFilter(user_id="u2"), SessionFilter(status="timed_out")):
        assert reader.list_sessions(filters, limit=1) == memory.list_sessions(filters, limit=1)


def test_each_line_is_one_event_with_its_type_first(path: Path) -> None:
    """Lines are standalone JSON objects whose first key names the event type."""
    backend = JsonlBackend(path)
    backend.write(EVENTS)
    backend.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == [
        "session_started",
        "step",
        "step",
        "step",
        "session_ended",
    ]
    assert all(line.startswith('{"type":') for line in lines)
    assert json.loads(lines[1])["input"] == [{"role": "user", "content": "hi"}]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_reads_the_file(path: Path) -> None:
    """jq can select and project events straight from the file."""
    backend = JsonlBackend(path)
    backend.write(EVENTS)
    backend.close()
    result = subprocess.run(
        ["jq", "-c", 'select(.type == "step") | [.session_id, .step_index]', str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.splitlines() == ['["a-1",0]', '["b-1",0]', '["a-1",1]']


def test_a_torn_last_line_is_skipped_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A line cut short by a crash is skipped on read, and later writes start on a new line."""
    crashed = JsonlBackend(path)
    crashed.write(EVENTS[:2])
    crashed.close()
    with open(path, "ab") as file:
        file.write(b'{"type":"step","session_id":"a-1","step_in')

    with caplog.at_level(logging.WARNING, logger="agentsession"):
        summary = JsonlBackend(path).get_session("a-1")
    assert summary is not None
    assert summary.total_steps == 1
    assert "unfinished last line" in caplog.text

    restarted = JsonlBackend(path)
    restarted.write([step("a-1", 1)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        assert [s.step_index for s in restarted.list_steps("a-1")] == [0, 1]
    assert "skipped line 3" in caplog.text


def test_a_corrupt_line_in_the_middle_is_skipped(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A line that is not an event is reported and skipped; the lines around it still count."""
    backend = JsonlBackend(path)
    backend.write(EVENTS[:2])
    with open(path, "ab") as file:
        file.write(b'{"type":"nonsense"}\nnot json at all\n\n')
    backend.write([step("a-1", 1)])
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        summary = backend.get_session("a-1")
    assert summary is not None
    assert summary.total_steps == 2
    assert "skipped line 3" in caplog.text
    assert "skipped line 4" in caplog.text


def test_a_step_written_twice_counts_once(path: Path) -> None:
    """A retried batch appends its events again; the replay keeps the first copy of each step."""
    backend = JsonlBackend(path)
    backend.write(EVENTS[1:3])
    backend.write([*EVENTS[1:3], step("a-1", 1, model="other")])
    summary = backend.get_session("a-1")
    assert summary is not None
    assert summary.total_steps == 2
    assert [s.input for s in backend.list_steps("a-1")] == [EVENTS[1].input, None]  # type: ignore[union-attr]


def test_reads_follow_new_writes(path: Path) -> None:
    """A read after a write sees it: the replay cache notices the file grew."""
    backend = JsonlBackend(path)
    assert backend.get_session("a-1") is None
    assert backend.list_sessions().total == 0
    backend.write(EVENTS[:2])
    first = backend.get_session("a-1")
    backend.write(EVENTS[3:4])
    second = backend.get_session("a-1")
    assert first is not None
    assert second is not None
    assert (first.total_steps, second.total_steps) == (1, 2)


def test_flush_close_and_write_after_close(path: Path) -> None:
    """flush and close are safe to repeat; a closed backend refuses writes but still reads."""
    backend = JsonlBackend(path)
    backend.flush()  # nothing written yet: no file to sync, no error
    backend.write(EVENTS)
    backend.flush()
    backend.close()
    backend.close()
    with pytest.raises(ValueError, match="closed"):
        backend.write(EVENTS)
    assert backend.list_sessions().total == 2
