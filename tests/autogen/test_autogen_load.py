"""Load: 1,000 sessions of 20 agent turns each, interleaved in a thread pool (an event loop per
conversation) and in asyncio tasks. Every model call is one step of its own session, indexes
gap-free, as read back from a real SQLite file, and nothing is dropped or faulted on the way."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_scripts import replay

import agentsession
from agentsession import SessionTracker, SQLiteBackend, using_session
from agentsession_autogen import SessionChatCompletionClient, instrument

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
    return f"ag-{test}-{n:04d}"


def task(n: int, turn: int) -> str:
    return f"session {n} turn {turn}"


async def converse(n: int, sid: str) -> None:
    """One conversation of TURNS runs of one agent: even ones in using_session with a plain
    client (recorded by instrument()), odd ones through the wrapper client of their tracker."""
    answers = replay(*(f"answer {n}.{turn}" for turn in range(TURNS)))
    if n % 2 == 0:
        agent = AssistantAgent(f"agent_{n}", answers)
        async with using_session(sid):
            for turn in range(TURNS):
                await agent.run(task=task(n, turn))
        return
    with SessionTracker(sid) as session:
        agent = AssistantAgent(f"agent_{n}", SessionChatCompletionClient(answers, session))
        for turn in range(TURNS):
            await agent.run(task=task(n, turn))


def assert_stored(database: Path, ids: list[str]) -> None:
    """Each session holds its TURNS model calls in turn order, made by its own agent, read back
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
            assert {s.name for s in steps} == {f"agent_{n}"}, sid
            # The agent sends its whole history: the last message is the turn's task.
            assert [s.input[-1]["content"] for s in steps] == [
                task(n, turn) for turn in range(TURNS)
            ], sid
            assert [s.output for s in steps] == [f"answer {n}.{turn}" for turn in range(TURNS)]
    finally:
        reader.close()


def test_thousand_sessions_in_threads(tmp_path: Path) -> None:
    """A pool of 32 threads runs 1,000 conversations, each on an event loop of its own."""
    database = sqlite_default_backend(tmp_path)
    assert instrument()
    ids = [session_id("threads", n) for n in range(SESSIONS)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda n: asyncio.run(converse(n, ids[n])), range(SESSIONS)))
    assert_stored(database, ids)


async def test_thousand_sessions_in_asyncio_tasks(tmp_path: Path) -> None:
    """1,000 conversations gathered at once on one event loop."""
    database = sqlite_default_backend(tmp_path)
    assert instrument()
    ids = [session_id("tasks", n) for n in range(SESSIONS)]
    await asyncio.gather(*(converse(n, sid) for n, sid in enumerate(ids)))
    assert_stored(database, ids)
