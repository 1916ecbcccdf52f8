"""One step per proxied LLM call: which session it belongs to, what it cost, how it ended.

The session comes from the request's headers (``parse_headers(strict=False)``); a header that
is malformed never blocks the call: its valid neighbours are used, the problem is counted,
logged once per header and returned to the client in ``<prefix>-Warning``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .._context import live_sessions
from .._headers import header_names, parse_headers, response_header_names
from .._health import count, record_fault, warn_once
from .._ids import new_session_id
from .._step import StepHandle
from .._tracker import SessionTracker
from ._usage import CallOutcome

__all__ = ["ENDPOINTS", "Endpoint", "RecordedCall", "Recorder"]

MAX_WARNING_CHARS = 1_000
"""Longest ``<prefix>-Warning`` value: enough for every problem of one request, cut beyond."""
_UNSAFE_HEADER_CHARS = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Endpoint:
    """A recorded OpenAI endpoint: the step name and kind its calls get."""

    name: str
    kind: str
    input_key: str


ENDPOINTS: dict[str, Endpoint] = {
    "chat/completions": Endpoint("chat.completions", "llm", "messages"),
    "completions": Endpoint("completions", "llm", "prompt"),
    "embeddings": Endpoint("embeddings", "embedding", "input"),
    "responses": Endpoint("responses", "llm", "input"),
}
"""``POST /v1/<path>`` requests recorded as steps; every other ``/v1/*`` request only passes."""


def header_safe(text: str, limit: int = MAX_WARNING_CHARS) -> str:
    """``text`` as a header value: printable ASCII only (others become ``?``), at most ``limit``."""
    text = _UNSAFE_HEADER_CHARS.sub("?", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _request_fields(body: bytes, endpoint: Endpoint) -> tuple[str | None, Any]:
    """The model and the input of a request body; a body that is not JSON gives neither."""
    try:
        payload = json.loads(body)
    except ValueError:  # forwarded anyway: the upstream answers the client with its own 400
        return None, None
    if not isinstance(payload, dict):
        return None, None
    model = payload.get("model")
    return (model if isinstance(model, str) else None), payload.get(endpoint.input_key)


class RecordedCall:
    """The step of one proxied call, from the request's headers to the response's end."""

    def __init__(
        self,
        recorder: Recorder,
        tracker: SessionTracker | None,
        step: StepHandle | None,
        problems: tuple[str, ...],
    ) -> None:
        self._recorder = recorder
        self.tracker = tracker
        self.step = step
        self.problems = problems

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Session id, trace id and next step index for the client, and any header problem."""
        names = self._recorder.response_header_names
        headers: list[tuple[bytes, bytes]] = []
        if self.tracker is not None and self.step is not None:
            headers += [
                (names[0], self.tracker.session_id.encode("ascii")),
                (names[1], self.step.trace_id.encode("ascii")),
                (names[2], str(self.tracker.step_index).encode("ascii")),
            ]
        if self.problems:
            headers.append((names[3], header_safe("; ".join(self.problems)).encode("ascii")))
        return headers

    def finish(self, status: int, outcome: CallOutcome, *, stream: bool) -> None:
        """Close the step from the upstream's answer: completed, or failed with its error."""
        step = self.step
        if step is None:
            return
        try:
            metadata = self._metadata(status, stream)
            if outcome.error is None and status < 400:
                step.end(
                    outcome.output,
                    model=None if step.model else outcome.model,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    total_tokens=outcome.total_tokens,
                    metadata=metadata,
                )
            else:
                step.fail(
                    outcome.error or f"upstream HTTP {status}",
                    output=outcome.output,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    metadata=metadata,
                )
        except Exception as exc:  # recording must never cost the client its answer
            record_fault("proxy.record", exc)

    def fail(self, error: str | BaseException, status: int | None, *, stream: bool) -> None:
        """Close the step as failed (no usable answer) or cancelled (the client went away)."""
        if self.step is None:
            return
        try:
            self.step.fail(error, metadata=self._metadata(status, stream))
        except Exception as exc:
            record_fault("proxy.record", exc)

    def _metadata(self, status: int | None, stream: bool) -> dict[str, Any]:
        metadata: dict[str, Any] = {"http_status": status, "stream": stream}
        if self.problems:
            metadata["header_problems"] = list(self.problems)
        return metadata


class Recorder:
    """Reads session headers and opens steps on the process's live session trackers."""

    def __init__(self, *, header_prefix: str, auto_session_id: bool, state_limit_bytes: int):
        self.header_prefix = header_prefix
        self.auto_session_id = auto_session_id
        self.state_limit_bytes = state_limit_bytes
        # The names the client side reads back; raises ValueError for a prefix that is no token.
        names = (*response_header_names(header_prefix), f"{header_prefix}-Warning")
        self.response_header_names = tuple(name.lower().encode("ascii") for name in names)
        self._index_header = header_names(header_prefix)[1]

    def open(
        self, headers: list[tuple[bytes, bytes]], endpoint: Endpoint | None, body: bytes
    ) -> RecordedCall:
        """Read the session headers and, for a recorded endpoint, begin its step."""
        try:
            return self._open(headers, endpoint, body)
        except Exception as exc:  # a fault of ours: forward the call unrecorded
            record_fault("proxy.record", exc)
            return RecordedCall(self, None, None, ())

    def _open(
        self, headers: list[tuple[bytes, bytes]], endpoint: Endpoint | None, body: bytes
    ) -> RecordedCall:
        session = parse_headers(
            headers,
            prefix=self.header_prefix,
            state_limit_bytes=self.state_limit_bytes,
            strict=False,
        )
        problems = list(session.problems)
        for problem in problems:
            _warn(problem.split(":", 1)[0], problem)
        if endpoint is None:
            return RecordedCall(self, None, None, tuple(problems))
        if session.session_id is not None:
            tracker = live_sessions.get_or_create(session.session_id, None, (), None)
        elif self.auto_session_id:
            # Registered as live, so that the client's next call with this id continues it.
            tracker = live_sessions.get_or_create(new_session_id(), None, (), None, new=True)
        else:
            return RecordedCall(self, None, None, tuple(problems))
        model, captured_input = _request_fields(body, endpoint)
        step = tracker.begin_step(
            kind=endpoint.kind,
            name=endpoint.name,
            framework="proxy",
            model=model,
            input=captured_input,
            step_index=session.step_index,
            state=session.state,
            parent_trace_id=session.parent_trace_id,
        )
        if step.recorded and session.step_index not in (None, step.step_index):
            # The same index again: default_headers computed once. Each call is still a step.
            problem = (
                f"{self._index_header}: step {session.step_index} of this session was already "
                f"recorded; this call is step {step.step_index} (are the headers computed once?)"
            )
            _warn("duplicate step index", problem)
            problems.append(problem)
        return RecordedCall(self, tracker, step, tuple(problems))


def _warn(kind: str, problem: str) -> None:
    """Count a header problem and log the first of each kind."""
    count("proxy.header_problems")
    warn_once(
        f"proxy.header_problem:{kind.lower()}",
        "agentsession proxy: %s (the call was forwarded; further header problems are only "
        "counted, in get_stats()['proxy.header_problems'])",
        header_safe(problem, 300),
    )
