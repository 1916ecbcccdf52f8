"""The agent traffic bench_scale.py records: many short sessions and one very long one."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from agentsession import SessionTracker
from agentsession.backends._base import SessionWriter

STEPS_PER_SESSION = 10
USERS = 2_000
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")
TAGS = ("prod", "beta", "eval", "mobile")
BIG_SESSION = "big-session-10k"
STEP_FAILURE_RATE = 0.02
SCORED_EVERY = 10
"""One session in this many is given a ``quality`` score, so the score filter has work."""

_SYSTEM = "You are a travel agent. Answer briefly, use the tools when you need facts."


def _words(rng: random.Random, count: int) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(count)
    )


@dataclass
class Traffic:
    """Pools of realistic inputs and outputs, drawn from while recording.

    Built once, so the recording loop spends its time in agentsession rather than in the
    random text generator; each value is shared by many steps and never mutated, as the
    tracker asks of the values it is handed.
    """

    seed: int = 7
    inputs: list[list[dict[str, str]]] = field(default_factory=list)
    outputs: list[dict[str, str]] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.rng = rng
        self.inputs = [
            [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": _words(rng, rng.randint(8, 24))},
            ]
            for _ in range(256)
        ]
        self.outputs = [
            {"role": "assistant", "content": _words(rng, rng.randint(10, 30))} for _ in range(256)
        ]
        self.goals = [_words(rng, 8) for _ in range(256)]


def record_session(traffic: Traffic, number: int, backend: SessionWriter) -> int:
    """Record one ended session of :data:`STEPS_PER_SESSION` steps; returns its failed steps."""
    rng = traffic.rng
    user = f"user-{rng.randrange(USERS):04d}"
    tracker = SessionTracker(
        user_id=user,
        tags=rng.sample(TAGS, rng.randint(0, 2)),
        metadata={"app": "travel", "build": number % 7},
        environment="prod",
        backend=backend,
    )
    model = rng.choice(MODELS)
    tracker.update_state({"goal": rng.choice(traffic.goals), "plan": ["flights", "hotel"]})
    failures = 0
    for turn in range(STEPS_PER_SESSION):
        tracker.update_state({"turn": turn, "retrieved": [number % 997, turn * 31]})
        step = tracker.begin_step(
            name="ChatOpenAI",
            framework="langchain",
            provider="openai",
            model=model,
            input=rng.choice(traffic.inputs),
        )
        if rng.random() < STEP_FAILURE_RATE:
            step.fail("RateLimitError: Rate limit reached for requests")
            failures += 1
        else:
            input_tokens = rng.randint(200, 2_000)
            step.end(
                rng.choice(traffic.outputs),
                input_tokens=input_tokens,
                output_tokens=rng.randint(10, 400),
            )
    if number % SCORED_EVERY == 0:
        tracker.score("quality", round(rng.random(), 3))
    if failures:
        tracker.end("failed", "RateLimitError")
    elif rng.random() < 0.02:
        tracker.end("cancelled", "user closed the tab")
    else:
        tracker.end()
    return failures


class BigSession:
    """The one long session, recorded a few steps at a time between the short ones."""

    def __init__(self, traffic: Traffic, backend: SessionWriter) -> None:
        self.traffic = traffic
        self.tracker = SessionTracker(
            BIG_SESSION, user_id="alice", tags=("long",), environment="prod", backend=backend
        )
        self.steps = 0

    def record(self, until: int) -> None:
        """Record steps until the session has ``until`` of them."""
        rng, tracker = self.traffic.rng, self.tracker
        while self.steps < until:
            turn = self.steps
            tracker.update_state({"turn": turn, "results": turn % 7})
            parent: dict[str, Any] = {}
            if turn % 10:  # sub-agent steps hang under every tenth step's trace
                parent["parent_trace_id"] = tracker.latest_trace_id
            step = tracker.begin_step(
                name="ChatOpenAI",
                framework="langchain",
                provider="openai",
                model="gpt-4o-mini",
                input=rng.choice(self.traffic.inputs),
                **parent,
            )
            step.end(rng.choice(self.traffic.outputs), input_tokens=420, output_tokens=80)
            self.steps += 1

    def end(self) -> None:
        self.tracker.end()
