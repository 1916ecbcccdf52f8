"""An AutoGen team (a planner with a flight-search tool, then a booker) recorded as one session.

Runs offline in about a second: the models are AutoGen's ReplayChatCompletionClient answering
from a script, so no API key is needed. Every model call of the team becomes a step of the
session, named after the agent that made it; the tool's result is listed on the step after it,
and the state the tool sets shows up in the next step's snapshot. Steps go to the default
store, ``.agentsession/sessions.db`` under the working directory (``AGENTSESSION_BACKEND_URL``
moves it).

    python -m pip install ./packages/agentsession ./packages/agentsession-autogen \
        "autogen-agentchat>=0.4.9" "autogen-ext>=0.4.9"
    python examples/autogen_team.py
"""

from __future__ import annotations

import asyncio
import json
import logging

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

import agentsession
from agentsession import SessionTracker, current_session, render_session
from agentsession_autogen import SessionChatCompletionClient

TASK = "Book the cheapest flight to Paris on 1 December"
MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


async def search_flights(destination: str, date: str) -> str:
    """Search the flights to a destination on a date."""
    # An async tool runs in the agent's task, in the session; AutoGen runs a sync tool in a
    # thread pool, which does not carry the session (agentsession.propagate_context does).
    flights = [
        {"flight": "AF1481", "to": destination, "date": date, "price_eur": 182},
        {"flight": "KL1243", "to": destination, "date": date, "price_eur": 149},
    ]
    session = current_session()  # tools run inside the session too: their state is recorded
    if session is not None:
        session.set_state("results_count", len(flights))
    return json.dumps(flights)


def scripted_model(*answers: str | CreateResult) -> ReplayChatCompletionClient:
    """A stand-in for a real model client: answers from a script, counts tokens roughly."""
    return ReplayChatCompletionClient(list(answers), model_info=MODEL_INFO)


def plan_search() -> CreateResult:
    """The planner's first answer: a call to search_flights."""
    arguments = json.dumps({"destination": "Paris", "date": "2026-12-01"})
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id="call_1", name="search_flights", arguments=arguments)],
        usage=RequestUsage(prompt_tokens=96, completion_tokens=21),
        cached=False,
    )


async def run_team(session: SessionTracker) -> None:
    """The team's run: every model client wrapped, bound to ``session``."""
    planner = AssistantAgent(
        "planner",
        model_client=SessionChatCompletionClient(
            scripted_model(plan_search(), "KL1243 is the cheapest, at 149 EUR."), session
        ),
        tools=[search_flights],
        reflect_on_tool_use=True,
        system_message="You find flights. Use search_flights.",
    )
    booker = AssistantAgent(
        "booker",
        model_client=SessionChatCompletionClient(
            scripted_model("Booked KL1243 to Paris on 1 December for 149 EUR."), session
        ),
        system_message="You book the flight the planner chose.",
    )
    await RoundRobinGroupChat([planner, booker], max_turns=2).run(task=TASK)


def record(session_id: str | None = None) -> SessionTracker:
    """Run the team as one session (a new id unless ``session_id`` is given) and return it."""
    with SessionTracker(
        session_id, user_id="user-a", tags=["autogen-example"], environment="demo"
    ) as session:
        session.set_state("user_query", TASK)
        asyncio.run(run_team(session))
    return session


def run(session_id: str | None = None) -> str:
    """The whole scenario; returns the id of the session it recorded."""
    return record(session_id).session_id


def main() -> None:
    # The scripted model warns about what a real one does (tool_choice, token counts): hush it.
    logging.getLogger("autogen_core.events").setLevel(logging.ERROR)
    session = record()
    print(render_session(session))
    print(f"\nStored in {agentsession.get_settings().backend_url}")
    print(f"Replay it with: agentsession sessions show {session.session_id}")


if __name__ == "__main__":
    main()
