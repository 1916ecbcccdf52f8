"""What recording costs an AutoGen agent: bare, with SessionChatCompletionClient, with instrument().

Times, in one run and alternating rounds, (1) an AssistantAgent turn (one model call, answered
by ReplayChatCompletionClient, so the model costs next to nothing and our share shows) and
(2) a direct ``create()`` of the model client; each bare, wrapped, and instrumented. Steps go to
a SQLite file through the background writer (the default set-up), flushed between rounds.

    python benchmarks/bench_autogen.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, ModelInfo, UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient

import agentsession
from agentsession import SessionTracker, using_session
from agentsession_autogen import SessionChatCompletionClient, instrument, uninstrument

MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)
MESSAGES = [UserMessage(content="Book a flight to Paris on 1 December", source="user")]


def scripted(calls: int) -> ReplayChatCompletionClient:
    return ReplayChatCompletionClient(["Booked KL1243 for 149 EUR."] * calls, model_info=MODEL_INFO)


async def timed_us(fn: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        before = clock()
        await fn()
        samples.append((clock() - before) / 1000)
    return samples


async def agent_turns(model: ChatCompletionClient, calls: int) -> list[float]:
    agent = AssistantAgent("planner", model_client=model)
    token = CancellationToken()

    async def turn() -> None:
        await agent.run(task="Book a flight to Paris on 1 December")
        await agent.on_reset(token)  # the same prompt every time: no growing history

    return await timed_us(turn, calls)


async def creates(model: ChatCompletionClient, calls: int) -> list[float]:
    return await timed_us(lambda: model.create(MESSAGES), calls)


async def measure(repeats: int, calls: int, session: SessionTracker) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}

    def add(name: str, samples: list[float]) -> None:
        results.setdefault(name, []).extend(samples)

    for _ in range(repeats):
        for kind, run in (("turn", agent_turns), ("create", creates)):
            add(f"{kind} bare", await run(scripted(calls), calls))
            wrapped = SessionChatCompletionClient(scripted(calls), session)
            add(f"{kind} wrapper", await run(wrapped, calls))
            # The writer catches up between variants, outside the timing: each starts idle.
            agentsession.flush()
            instrument()
            try:
                async with using_session(session):
                    add(f"{kind} instrument", await run(scripted(calls), calls))
            finally:
                uninstrument()
            agentsession.flush()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI smoke runs")
    args = parser.parse_args()
    repeats, calls = (3, 200) if args.quick else (10, 500)
    # The scripted model warns about token counting on every call: not what is measured.
    logging.getLogger("autogen_core.events").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        session = SessionTracker("bench-autogen-0001", backend=f"sqlite:///{Path(tmp)}/bench.db")
        results = asyncio.run(measure(repeats, calls, session))
        agentsession.shutdown()
        errors = {k: v for k, v in agentsession.get_stats().items() if k.startswith("faults.")}

    print(f"{repeats} rounds x {calls} calls per variant; medians, timer included")
    print(f"{'':34}{'median us':>10}{'overhead us':>13}{'ratio':>8}")
    for kind, title in (("turn", "AssistantAgent turn (1 model call)"), ("create", "create()")):
        bare = statistics.median(results[f"{kind} bare"])
        print(title)
        for variant in ("bare", "wrapper", "instrument"):
            median = statistics.median(results[f"{kind} {variant}"])
            label = {
                "bare": "  bare ReplayChatCompletionClient",
                "wrapper": "  SessionChatCompletionClient",
                "instrument": "  instrument()",
            }[variant]
            print(f"{label:34}{median:10.1f}{median - bare:13.1f}{median / bare:8.2f}x")
    if errors:
        print(f"faults: {errors}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
