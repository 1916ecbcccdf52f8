"""A team's steps written to a real SQLite file and read back by a fresh backend."""

from __future__ import annotations

from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_scripts import answer, names, replay, search_flights, tool_call

import agentsession
from agentsession import SessionTracker, SQLiteBackend, using_session
from agentsession_autogen import SessionChatCompletionClient, instrument


async def test_team_steps_read_back_from_sqlite(tmp_path: Path) -> None:
    """Indexes, agents, team, tokens, tool calls and parents survive the round trip to disk."""
    path = tmp_path / "sessions.db"
    session = SessionTracker(
        "trip-2611", user_id="user-a", backend=f"sqlite:///{path}", tags=["autogen"]
    )
    planner = AssistantAgent(
        "planner",
        SessionChatCompletionClient(
            replay(tool_call("search_flights", "c1", destination="Paris"), answer("AF1481", 30, 4)),
            session,
        ),
        tools=[search_flights],
        reflect_on_tool_use=True,
    )
    booker = AssistantAgent("booker", SessionChatCompletionClient(replay("Booked."), session))
    with session:
        session.set_state("destination", "Paris")
        await RoundRobinGroupChat([planner, booker], max_turns=2).run(task="Fly me to Paris")
    assert agentsession.flush(5.0)

    store = SQLiteBackend(path)
    try:
        summary = store.get_session("trip-2611")
        steps = store.list_steps("trip-2611")
    finally:
        store.close()
    assert summary is not None
    assert (summary.status, summary.total_steps, summary.user_ids) == ("completed", 3, ["user-a"])
    assert summary.tags == ["autogen"]
    assert [s.step_index for s in steps] == [0, 1, 2]
    assert names(steps) == ["planner", "planner", "booker"]
    assert len({s.metadata["team_id"] for s in steps}) == 1
    assert steps[1].tool_calls[0].name == "search_flights"
    assert steps[1].tool_calls[0].input == {"destination": "Paris"}
    assert (steps[1].input_tokens, steps[1].output_tokens) == (30, 4)
    assert {s.framework for s in steps} == {"autogen"}
    assert all(s.state == {"destination": "Paris"} for s in steps)


async def test_instrumented_conversation_continues_in_sqlite_across_turns(
    tmp_path: Path,
) -> None:
    """The same session id on each turn continues its step indexes in the store."""
    path = tmp_path / "default.db"
    agentsession.set_default_backend(f"sqlite:///{path}")
    instrument()
    planner = AssistantAgent("planner", replay("one", "two", "three"))
    for turn in ("first", "second", "third"):
        async with using_session("conv-sqlite"):
            await planner.run(task=turn)
    assert agentsession.flush(5.0)
    store = SQLiteBackend(path)
    try:
        assert [s.step_index for s in store.list_steps("conv-sqlite")] == [0, 1, 2]
    finally:
        store.close()
