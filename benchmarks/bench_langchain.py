"""What SessionCallbackHandler adds to a LangChain call, against a no-op handler, in one run.

Two workloads on langchain-core's ``FakeListChatModel``: ``model.invoke`` alone, and a 3-step
``prompt | model | parser`` chain. Each runs bare (no callbacks), with a no-op
``BaseCallbackHandler`` and with ``SessionCallbackHandler`` recording into a SQLite file through
the background writer. Overhead = variant - bare; the goal is ours <= 1.5x the no-op's.

Two measures, each in rounds that interleave the variants in a rotating order. Per call: each
call timed alone, median; the writer catches up between rounds, outside the timing: what one
call costs its caller (the goal). Back to back: the wall time of a run of calls plus the flush
that stores them, per call, median of the runs: it adds the writer's work (building each Step,
writing it to SQLite) which shares the GIL, and which a real application does while its LLM
calls wait on the network.

    python benchmarks/bench_langchain.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import per_call_us
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import agentsession
from agentsession import SessionTracker, SQLiteBackend
from agentsession_langchain import SessionCallbackHandler

GOAL = 1.5
SESSION_ID = "bench-langchain-0001"


class NoOpHandler(BaseCallbackHandler):
    """The baseline: a BaseCallbackHandler that overrides nothing (so, like any handler without
    ``on_chat_model_start``, it costs LangChain a fall-back to ``on_llm_start``)."""


def stored_wall_us(fn: Callable[[], object], calls: int) -> float:
    """Wall time per call of ``calls`` calls and of writing all they recorded."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    agentsession.flush()
    return (time.perf_counter_ns() - start) / calls / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI smoke runs")
    args = parser.parse_args()
    rounds, calls = (12, 100) if args.quick else (60, 100)
    burst_rounds, burst = (3, 1_000) if args.quick else (7, 2_000)
    for variable in ("LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING", "LANGCHAIN_TRACING"):
        os.environ.pop(variable, None)

    model = FakeListChatModel(responses=["Paris is the capital of France."])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one sentence."), ("user", "{question}")]
    )
    chain = prompt | model | StrOutputParser()
    workloads: dict[str, Callable[[dict[str, Any] | None], object]] = {
        "model.invoke": lambda config: model.invoke("What is the capital of France?", config),
        "prompt|model|parser": lambda config: chain.invoke(
            {"question": "What is the capital of France?"}, config
        ),
    }

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        tracker = SessionTracker(SESSION_ID, backend=SQLiteBackend(path))
        configs: dict[str, dict[str, Any] | None] = {
            "bare": None,
            "no-op handler": {"callbacks": [NoOpHandler()]},
            "ours": {"callbacks": [SessionCallbackHandler(tracker)]},
        }
        medians: dict[str, dict[str, float]] = {}
        walls: dict[str, dict[str, float]] = {}
        for workload, run in workloads.items():
            samples: dict[str, list[float]] = {variant: [] for variant in configs}
            for config in configs.values():  # warm-up: imports, caches, the writer thread
                for _ in range(50):
                    run(config)
            agentsession.flush()
            order = list(configs)
            for round_number in range(rounds):
                # A different order each round, so that no variant always follows the same one.
                shift = round_number % len(order)
                for variant in order[shift:] + order[:shift]:
                    call = functools.partial(run, configs[variant])
                    samples[variant].extend(per_call_us(call, calls))
                agentsession.flush()  # the writer catches up outside the timing
            medians[workload] = {v: statistics.median(s) for v, s in samples.items()}
            wall_samples: dict[str, list[float]] = {variant: [] for variant in configs}
            for round_number in range(burst_rounds):
                shift = round_number % len(order)
                for variant in order[shift:] + order[:shift]:
                    call = functools.partial(run, configs[variant])
                    wall_samples[variant].append(stored_wall_us(call, burst))
            walls[workload] = {v: statistics.median(s) for v, s in wall_samples.items()}
        tracker.end()
        agentsession.shutdown()
        written = stored_steps(path)
        expected = tracker.step_index

    report(f"per call, median on the caller's thread, {rounds * calls} calls each", medians)
    report(
        f"back to back, per call, until all is stored (writer included), median of "
        f"{burst_rounds} runs of {burst} calls",
        walls,
    )
    ratios = [ratio(medians[workload]) for workload in workloads]
    verdict = "met" if max(ratios) <= GOAL else "MISSED"
    print(f"\ngoal: ours overhead <= {GOAL}x the no-op handler's, per call -> {verdict}")
    print(f"steps in SQLite after flush: {written} of {expected}")
    return 0


def ratio(row: dict[str, float]) -> float:
    noop = row["no-op handler"] - row["bare"]
    return (row["ours"] - row["bare"]) / noop if noop > 0 else float("inf")


def report(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title} (microseconds)")
    print(
        f"{'workload':22} {'bare':>8} {'no-op':>8} {'ours':>8} {'no-op +':>8} {'ours +':>8} ratio"
    )
    for workload, row in table.items():
        bare, noop, ours = row["bare"], row["no-op handler"], row["ours"]
        print(
            f"{workload:22} {bare:8.1f} {noop:8.1f} {ours:8.1f} {noop - bare:8.1f} "
            f"{ours - bare:8.1f} {ratio(row):5.2f}x"
        )


def stored_steps(path: Path) -> int:
    reader = SQLiteBackend(path)
    try:
        summary = reader.get_session(SESSION_ID)
        return 0 if summary is None else summary.total_steps
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(main())
