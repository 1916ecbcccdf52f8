"""A three-step travel agent (plan, tool call, answer) recorded as one session, then replayed.

Runs offline in about a second: the "LLM" is a stand-in that answers from a script. Steps go to
the default SQLite store, ``.agentsession/sessions.db`` under the working directory (move it
with ``AGENTSESSION_BACKEND_URL``); browse it afterwards with ``agentsession sessions list``.

    python examples/quickstart.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import agentsession
from agentsession import SessionTracker, render_session


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int


def stand_in_llm(messages: list[dict[str, str]], reply: str, latency_s: float) -> Completion:
    """Answers with ``reply`` after ``latency_s``, counting words as tokens."""
    time.sleep(latency_s)
    prompt_words = sum(len(m["content"].split()) for m in messages)
    return Completion(reply, input_tokens=prompt_words * 4, output_tokens=len(reply.split()) * 4)


def search_flights(destination: str, date: str) -> list[dict[str, object]]:
    time.sleep(0.03)
    return [
        {"flight": "AF1481", "to": destination, "date": date, "price_eur": 182},
        {"flight": "KL1243", "to": destination, "date": date, "price_eur": 149},
    ]


def call_llm(session: SessionTracker, name: str, messages: list[dict[str, str]], reply: str) -> str:
    """One LLM call, recorded as the session's next step."""
    with session.begin_step(
        name=name, model="gpt-4o-mini", provider="openai", input=messages
    ) as step:
        completion = stand_in_llm(messages, reply, latency_s=0.05)
        step.end(
            completion.text,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
        )
    return completion.text


def run_agent(question: str) -> SessionTracker:
    with SessionTracker(user_id="user-a", tags=["quickstart"], environment="demo") as session:
        session.set_state("user_query", question)
        messages = [{"role": "user", "content": question}]

        # Step 0: plan. The model decides to search for flights.
        plan = call_llm(session, "plan", messages, "search_flights(destination='Paris')")
        session.update_state({"plan": plan, "tool_called": "search_flights"})

        # The tool runs between two LLM calls: it is listed in step 1's tool_calls.
        started = time.time_ns()
        flights = search_flights("Paris", "2026-12-01")
        session.record_tool_call(
            "search_flights",
            {"destination": "Paris", "date": "2026-12-01"},
            flights,
            started_ns=started,
            duration_ms=(time.time_ns() - started) / 1e6,
        )
        session.set_state("results_count", len(flights))

        # Step 1: choose from the tool's results.
        messages.append({"role": "tool", "content": str(flights)})
        choice = call_llm(session, "choose", messages, "KL1243 is the cheapest at 149 EUR")
        session.update_state({"selected_flight": "KL1243"})
        session.delete_state("tool_called")

        # Step 2: answer the user.
        messages.append({"role": "assistant", "content": choice})
        call_llm(session, "answer", messages, "Booked KL1243 to Paris on 1 December for 149 EUR.")
    return session


def main() -> None:
    session = run_agent("Book a flight to Paris on December 1st")
    print(render_session(session))
    print(f"\nStored in {agentsession.get_settings().backend_url}")
    print(f"Replay it with: agentsession sessions show {session.session_id}")


if __name__ == "__main__":
    main()
