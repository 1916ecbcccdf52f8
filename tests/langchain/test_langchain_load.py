"""Load: 1,000 sessions of 20 chat-model calls each, interleaved in a thread pool and in asyncio
tasks. Every call is one step of its own session, indexes gap-free, as read back from a real
SQLite file, and nothing is dropped or faulted on the way."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import agentsession
import agentsession_langchain
from agentsession import SessionTracker, SQLiteBackend, using_session
from agentsession_langchain import SessionCallbackHandler

# langchain-core 0.3 warns on every call under pydantic 2.11: 26,000 warnings slow the test.
pytestmark = pytest.mark.filterwarnings("ignore:Accessing the 'model_fields' attribute")

SESSIONS = 1_000
TURNS = 20
BURST_QUEUE = 50_000
"""Events the background writer may hold here: the whole burst (~21,000). Fake models answer as
fast as the framework calls them, 2,000-6,000 steps/s, and the writer thread, needing ~75 us of
the GIL per event, gets too little of it: on this 2-core machine its backlog peaked at 5,000 to
10,000 events and went past the default 10,000 in some runs. These tests are about sessions and
indexes; writer throughput and the queue bound belong to the scale benchmark and fault tests."""


def sqlite_default_backend(tmp_path: Path) -> Path:
    """Send trackers that name no backend to a fresh SQLite file (returned)."""
    agentsession.configure(queue_size=BURST_QUEUE)
    database = tmp_path / "load.db"
    agentsession.set_default_backend(f"sqlite:///{database}")
    return database


def session_id(test: str, n: int) -> str:
    return f"lc-{test}-{n:04d}"


def question(n: int, turn: int) -> str:
    return f"session {n} turn {turn}"


def model_of(n: int) -> FakeListChatModel:
    """A model answering session ``n``'s turns in order, so each output names its call."""
    return FakeListChatModel(responses=[f"answer {n}.{turn}" for turn in range(TURNS)])


def assert_stored(database: Path, ids: list[str]) -> None:
    """Each session holds its TURNS calls in turn order, read back from the SQLite file (the
    session summaries agree); no other session was made and nothing was dropped or faulted."""
    assert agentsession.flush(30.0)
    stats = agentsession.get_stats()
    assert {k: v for k, v in stats.items() if k.startswith(("dropped.", "faults."))} == {}
    reader = SQLiteBackend(database)
    try:
        sessions = reader.list_sessions(limit=len(ids) + 1).sessions
        assert {s.session_id: s.total_steps for s in sessions} == dict.fromkeys(ids, TURNS)
        for n, sid in enumerate(ids):
            steps = reader.list_steps(sid)
            assert [s.step_index for s in steps] == list(range(TURNS)), sid
            assert [s.input for s in steps] == [
                [{"role": "user", "content": question(n, turn)}] for turn in range(TURNS)
            ], sid
            assert [s.output for s in steps] == [
                {"role": "assistant", "content": f"answer {n}.{turn}"} for turn in range(TURNS)
            ], sid
    finally:
        reader.close()


def test_thousand_sessions_in_threads(tmp_path: Path) -> None:
    """A pool of 32 threads runs 1,000 conversations: even ones name their session in the run
    metadata of one shared handler (session_id or thread_id), odd ones pass a handler of
    their own session."""
    database = sqlite_default_backend(tmp_path)
    shared = SessionCallbackHandler()
    ids = [session_id("threads", n) for n in range(SESSIONS)]

    def converse(n: int) -> None:
        model = model_of(n)
        if n % 2:
            with SessionTracker(ids[n]) as session:
                config: dict[str, Any] = {"callbacks": [SessionCallbackHandler(session)]}
                for turn in range(TURNS):
                    model.invoke(question(n, turn), config)
            return
        key = "session_id" if n % 4 == 0 else "thread_id"
        config = {"callbacks": [shared], "metadata": {key: ids[n]}}
        for turn in range(TURNS):
            model.invoke(question(n, turn), config)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(converse, range(SESSIONS)))
    assert shared.open_runs == 0
    assert_stored(database, ids)


async def test_thousand_sessions_in_asyncio_tasks(tmp_path: Path) -> None:
    """1,000 tasks gathered at once with instrument() on: a third pick their session with
    using_session, a third by run metadata, a third pass a handler of their own session (which
    the instrument() handler must not record a second time)."""
    database = sqlite_default_backend(tmp_path)
    assert agentsession_langchain.instrument()
    ids = [session_id("tasks", n) for n in range(SESSIONS)]

    async def converse(n: int) -> None:
        model = model_of(n)
        if n % 3 == 0:
            async with using_session(ids[n]):
                for turn in range(TURNS):
                    await model.ainvoke(question(n, turn))
            return
        if n % 3 == 1:
            config: dict[str, Any] = {"metadata": {"session_id": ids[n]}}
            for turn in range(TURNS):
                await model.ainvoke(question(n, turn), config)
            return
        with SessionTracker(ids[n]) as session:
            config = {"callbacks": [SessionCallbackHandler(session)]}
            for turn in range(TURNS):
                await model.ainvoke(question(n, turn), config)

    await asyncio.gather(*(converse(n) for n in range(SESSIONS)))
    assert_stored(database, ids)
