"""Load: 1,000 sessions of 20 LLM calls each, interleaved in a thread pool and in asyncio tasks
under instrument(). Every call is one step of its own session, indexes gap-free, as read back
from a real SQLite file, and nothing is dropped or faulted on the way."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llama_index.core.llms import ChatMessage, MockLLM

import agentsession
from agentsession import SessionTracker, SQLiteBackend, using_session
from agentsession_llamaindex import SessionSpanHandler

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
    return f"li-{test}-{n:04d}"


def question(n: int, turn: int) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=f"session {n} turn {turn}")]


def assert_stored(database: Path, ids: list[str]) -> None:
    """Each session holds its TURNS calls in turn order (MockLLM echoes the prompt), read back
    from the SQLite file, summaries agreeing; no other session was made, nothing was dropped."""
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
            prompts = [f"session {n} turn {turn}" for turn in range(TURNS)]
            assert [s.input for s in steps] == [
                [{"role": "user", "content": prompt}] for prompt in prompts
            ], sid
            assert [s.output["content"] for s in steps] == [
                f"user: {prompt}\nassistant: " for prompt in prompts
            ], sid
    finally:
        reader.close()


def test_thousand_sessions_in_threads(handler: SessionSpanHandler, tmp_path: Path) -> None:
    """A pool of 32 threads runs 1,000 conversations on one MockLLM: even ones enter
    using_session with their id, odd ones a tracker of their own."""
    database = sqlite_default_backend(tmp_path)
    llm = MockLLM()
    ids = [session_id("threads", n) for n in range(SESSIONS)]

    def converse(n: int) -> None:
        with SessionTracker(ids[n]) if n % 2 else using_session(ids[n]):
            for turn in range(TURNS):
                llm.chat(question(n, turn))

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(converse, range(SESSIONS)))
    assert_stored(database, ids)


async def test_thousand_sessions_in_asyncio_tasks(
    handler: SessionSpanHandler, tmp_path: Path
) -> None:
    """1,000 tasks gathered at once, each awaiting achat 20 times in its own session."""
    database = sqlite_default_backend(tmp_path)
    llm = MockLLM()
    ids = [session_id("tasks", n) for n in range(SESSIONS)]

    async def converse(n: int) -> None:
        async with SessionTracker(ids[n]) if n % 2 else using_session(ids[n]):
            for turn in range(TURNS):
                await llm.achat(question(n, turn))

    await asyncio.gather(*(converse(n) for n in range(SESSIONS)))
    assert_stored(database, ids)
