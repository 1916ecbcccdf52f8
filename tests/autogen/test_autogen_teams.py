"""Teams: the speaking agent and its team on every step, speaker selection, nested runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat
from autogen_scripts import answer, names, replay, search_flights, tool_call

from agentsession import SessionTracker, Step, using_session
from agentsession_autogen import SessionChatCompletionClient, instrument


async def test_round_robin_team_names_each_speaker_and_its_team(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """Each step names the agent that spoke and carries the team's id; indexes follow the turns."""
    session = SessionTracker()
    planner = AssistantAgent(
        "planner", SessionChatCompletionClient(replay("plan A", "plan B"), session)
    )
    critic = AssistantAgent("critic", SessionChatCompletionClient(replay("looks good"), session))
    team = RoundRobinGroupChat([planner, critic], max_turns=3)
    await team.run(task="Plan a trip to Paris")
    steps = steps_of(session.session_id)
    assert names(steps) == ["planner", "critic", "planner"]
    assert [s.step_index for s in steps] == [0, 1, 2]
    team_ids = {s.metadata["team_id"] for s in steps}
    assert len(team_ids) == 1
    assert team._team_id in team_ids
    assert steps[1].metadata["agent_id"] == f"critic_{team._team_id}/{team._team_id}"


async def test_selector_team_records_speaker_selection_as_its_own_kind(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """SelectorGroupChat's choice of the next speaker is a step of kind speaker_selection."""
    session = SessionTracker()
    selector = SessionChatCompletionClient(replay("planner", "booker"), session)
    planner = AssistantAgent(
        "planner",
        SessionChatCompletionClient(replay("Fly to Paris on AF1481."), session),
        description="Plans trips.",
    )
    booker = AssistantAgent(
        "booker",
        SessionChatCompletionClient(replay("Booked AF1481."), session),
        description="Books flights.",
    )
    team = SelectorGroupChat(
        [planner, booker], model_client=selector, max_turns=2, allow_repeated_speaker=True
    )
    await team.run(task="Book a flight to Paris")
    steps = steps_of(session.session_id)
    assert [(s.kind, s.name) for s in steps] == [
        ("speaker_selection", "speaker_selection"),
        ("llm", "planner"),
        ("speaker_selection", "speaker_selection"),
        ("llm", "booker"),
    ]
    assert steps[0].metadata["agent"] == "SelectorGroupChatManager"
    assert len({s.metadata["team_id"] for s in steps}) == 1


async def test_team_under_instrument_is_one_session(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """instrument(): a team run inside using_session records every agent's calls there."""
    instrument()
    planner = AssistantAgent(
        "planner",
        replay(tool_call("search_flights", "call-1", destination="Paris"), answer("AF1481")),
        tools=[search_flights],
        reflect_on_tool_use=True,
    )
    critic = AssistantAgent("critic", replay("fine"))
    team = RoundRobinGroupChat([planner, critic], max_turns=2)
    async with using_session("trip-42", user_id="user-a"):
        await team.run(task="Flights to Paris")
    steps = steps_of("trip-42")
    assert names(steps) == ["planner", "planner", "critic"]
    assert [c.name for c in steps[1].tool_calls] == ["search_flights"]
    assert {s.user_id for s in steps} == {"user-a"}


async def test_inner_team_as_a_participant_keeps_its_own_team(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """A team nested as a participant: its agents' steps carry the inner team's id."""
    session = SessionTracker()
    inner_agent = AssistantAgent(
        "researcher", SessionChatCompletionClient(replay("found"), session)
    )
    outer_agent = AssistantAgent("planner", SessionChatCompletionClient(replay("plan"), session))
    try:
        inner = RoundRobinGroupChat([inner_agent], max_turns=1, name="research_team")
        outer = RoundRobinGroupChat([outer_agent, inner], max_turns=2)  # type: ignore[list-item]
    except (TypeError, AttributeError):
        pytest.skip("teams as participants arrived in autogen-agentchat 0.6")
    await outer.run(task="Research Paris")
    planner_step, researcher_step = steps_of(session.session_id)
    assert names([planner_step, researcher_step]) == ["planner", "researcher"]
    assert planner_step.metadata["team_id"] == outer._team_id
    assert researcher_step.metadata["team_id"] == inner._team_id


async def test_agent_in_a_tool_is_nested_under_the_step_that_called_it(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """An agent run inside another agent's tool: its steps carry the calling step's trace id."""
    session = SessionTracker()
    researcher = AssistantAgent(
        "researcher",
        SessionChatCompletionClient(
            replay(tool_call("search_flights", "r1", destination="Paris"), answer("AF1481")),
            session,
        ),
        tools=[search_flights],
        reflect_on_tool_use=True,
    )

    async def research(question: str) -> str:
        """Ask the researcher."""
        result = await researcher.run(task=question)
        return str(result.messages[-1].content)

    planner = AssistantAgent(
        "planner",
        SessionChatCompletionClient(
            replay(tool_call("research", "p1", question="Paris flights?"), answer("Take AF1481")),
            session,
        ),
        tools=[research],
        reflect_on_tool_use=True,
    )
    await planner.run(task="Plan my trip")
    steps = steps_of(session.session_id)
    assert names(steps) == ["planner", "researcher", "researcher", "planner"]
    asking, inner_first, inner_second, reflecting = steps
    assert inner_first.parent_trace_id == asking.trace_id
    assert inner_second.parent_trace_id == asking.trace_id
    assert [c.name for c in inner_second.tool_calls] == ["search_flights"]
    assert reflecting.parent_trace_id is None
    assert [c.name for c in reflecting.tool_calls] == ["research"]


async def test_inner_team_in_a_tool_is_nested_under_the_step_that_called_it(
    steps_of: Callable[[str], list[Step]],
) -> None:
    """TeamTool: the inner team's steps carry the trace id of the step that called the tool."""
    tools = pytest.importorskip("autogen_agentchat.tools")  # arrived in autogen-agentchat 0.6
    session = SessionTracker()
    writer = AssistantAgent("writer", SessionChatCompletionClient(replay("draft"), session))
    editor = AssistantAgent("editor", SessionChatCompletionClient(replay("edited"), session))
    inner = RoundRobinGroupChat([writer, editor], termination_condition=MaxMessageTermination(3))
    team_tool = tools.TeamTool(inner, name="write_team", description="Writes a text.")
    lead = AssistantAgent(
        "lead",
        SessionChatCompletionClient(
            replay(tool_call("write_team", "t1", task="Write about Paris"), answer("Done")),
            session,
        ),
        tools=[team_tool],
        reflect_on_tool_use=True,
    )
    await lead.run(task="Get a text written")
    steps = steps_of(session.session_id)
    assert names(steps) == ["lead", "writer", "editor", "lead"]
    asking = steps[0]
    assert [s.parent_trace_id for s in steps[1:3]] == [asking.trace_id] * 2
    assert steps[1].metadata["team_id"] == inner._team_id
    assert steps[3].parent_trace_id is None
