"""Every backend reads a long session a page at a time: ``list_steps(after=, limit=)``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agentsession._models import SessionEvent, SessionStarted, Step
from agentsession.backends._base import Backend, steps_as_json
from agentsession.backends._jsonl import JsonlBackend
from agentsession.backends._memory import MemoryBackend
from agentsession.backends._sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
SESSION = "paged-session-0001"
STEPS = 25


def step(session_id: str, index: int) -> Step:
    began = T0 + timedelta(seconds=index)
    return Step(
        session_id=session_id,
        step_index=index,
        step_id=f"span-{index}",
        trace_id="0" * 32,
        started_at=began,
        ended_at=began + timedelta(milliseconds=500),
        duration_ms=500.0,
        model="gpt-4o",
        input_tokens=index,
        state={"n": index},
        output=f"answer {index}",
    )


def events() -> list[SessionEvent]:
    """A 25-step session written out of order, beside a neighbour whose steps must not leak."""
    written: list[SessionEvent] = [SessionStarted(session_id=SESSION, started_at=T0)]
    written += [step(SESSION, index) for index in (*range(10, STEPS), *range(10))]
    written += [step("neighbour-0001", index) for index in range(5)]
    return written


@pytest.fixture(params=["memory", "jsonl", "sqlite"])
def reader(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each built-in backend holding :func:`events`, written in two batches."""
    backend: Backend
    if request.param == "memory":
        backend = MemoryBackend()
    elif request.param == "jsonl":
        backend = JsonlBackend(tmp_path / "events.jsonl")
    else:
        backend = SQLiteBackend(tmp_path / "sessions.db")
    written = events()
    backend.write(written[:12])
    backend.write(written[12:])
    yield backend
    backend.close()


def walk(reader: Backend, limit: int) -> list[list[int]]:
    """The step indexes of every page, each page starting after the last one's last step."""
    pages: list[list[int]] = []
    after: int | None = None
    while page := reader.list_steps(SESSION, after=after, limit=limit):
        assert len(page) <= limit
        pages.append([s.step_index for s in page])
        after = page[-1].step_index
    return pages


@pytest.mark.parametrize("limit", [1, 7, 25, 100])
def test_pages_visit_every_step_once_in_order(reader: Backend, limit: int) -> None:
    pages = walk(reader, limit)
    assert [index for page in pages for index in page] == list(range(STEPS))
    assert len(pages) == -(-STEPS // limit)
    assert all(len(page) == limit for page in pages[:-1])


def test_a_page_is_the_slice_of_the_whole_session(reader: Backend) -> None:
    """Paging changes which steps come back, never what a step holds; the defaults read all."""
    whole = reader.list_steps(SESSION)
    assert [s.step_index for s in whole] == list(range(STEPS))
    assert reader.list_steps(SESSION, after=None, limit=None) == whole
    assert reader.list_steps(SESSION, after=9, limit=5) == whole[10:15]
    assert reader.list_steps(SESSION, after=20) == whole[21:]
    assert reader.list_steps(SESSION, limit=3) == whole[:3]
    assert reader.list_steps(SESSION, after=-1, limit=2) == whole[:2]


@pytest.mark.parametrize("after", [STEPS - 1, STEPS, 10**6, 2**64])
def test_after_the_last_step_there_is_nothing(reader: Backend, after: int) -> None:
    assert reader.list_steps(SESSION, after=after) == []
    assert reader.list_steps(SESSION, after=after, limit=10) == []
    assert steps_as_json(reader, SESSION, after=after, limit=10) == []


def test_a_huge_limit_or_a_very_negative_after_reads_everything(reader: Backend) -> None:
    """Bounds past SQLite's 64-bit integers behave as in the in-process backends."""
    assert len(reader.list_steps(SESSION, after=-(2**70), limit=2**70)) == STEPS


def test_an_unknown_session_has_no_pages(reader: Backend) -> None:
    assert reader.list_steps("unknown-0001", after=3, limit=5) == []
    assert reader.list_steps("unknown-0001", limit=1) == []
    assert steps_as_json(reader, "unknown-0001", limit=1) == []


@pytest.mark.parametrize("limit", [0, -1, -(2**70)])
def test_a_limit_under_one_is_refused(reader: Backend, limit: int) -> None:
    for session_id in (SESSION, "unknown-0001"):
        with pytest.raises(ValueError, match=rf"limit must be at least 1, got {limit}"):
            reader.list_steps(session_id, limit=limit)
        with pytest.raises(ValueError, match=rf"limit must be at least 1, got {limit}"):
            steps_as_json(reader, session_id, after=3, limit=limit)


@pytest.mark.parametrize(("after", "limit"), [(None, None), (None, 4), (6, 4), (20, 100)])
def test_json_pages_hold_what_the_step_pages_hold(
    reader: Backend, after: int | None, limit: int | None
) -> None:
    """SQLite builds the JSON itself; the others go through the models."""
    steps = reader.list_steps(SESSION, after=after, limit=limit)
    texts = steps_as_json(reader, SESSION, after=after, limit=limit)
    assert [json.loads(text) for text in texts] == [s.model_dump(mode="json") for s in steps]
    fields = {"i": "step_index", "out": "output"}
    assert [json.loads(text) for text in steps_as_json(reader, SESSION, fields, limit=2)] == [
        {"i": 0, "out": "answer 0"},
        {"i": 1, "out": "answer 1"},
    ]


def test_sqlite_list_steps_json_takes_the_page_keywords(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "sessions.db")
    try:
        backend.write(events())
        texts = backend.list_steps_json(SESSION, {"i": "step_index"}, after=22, limit=5)
        assert [json.loads(text) for text in texts] == [{"i": 23}, {"i": 24}]
        with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
            backend.list_steps_json(SESSION, after=3, limit=0)
    finally:
        backend.close()


def test_sqlite_finds_a_page_through_the_step_key_without_sorting(tmp_path: Path) -> None:
    """The page is a range of the (session_key, step_index) key: no scan, no sort."""
    path = tmp_path / "sessions.db"
    backend = SQLiteBackend(path)
    statements: list[str] = []
    try:
        backend.write(events())
        backend.get_session(SESSION)  # opens the reader connection
        assert backend._reader is not None
        backend._reader.set_trace_callback(statements.append)
        assert len(backend.list_steps(SESSION, after=5, limit=3)) == 3
    finally:
        backend.close()
    query = next(s for s in statements if s.startswith("SELECT") and "FROM steps" in s)
    conn = sqlite3.connect(path)
    try:
        plan = "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    finally:
        conn.close()
    assert "step_index>?" in plan.replace(" ", ""), plan
    assert "TEMP B-TREE" not in plan
