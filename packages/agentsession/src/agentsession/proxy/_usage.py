"""What an OpenAI-compatible response says about a call: tokens, error, output text.

Reads both whole JSON bodies and Server-Sent Events streams. The stream reader is fed the
chunks as they pass through to the client, so nothing is buffered beyond one partial line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CallOutcome", "StreamScanner", "outcome_from_body", "tokens_from_usage"]

MAX_SSE_LINE_BYTES = 1 << 20
"""A longer ``data:`` line is passed through but not read (it cannot hold just a usage)."""


@dataclass
class CallOutcome:
    """What the response told us; fields it did not mention stay None."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    error: str | None = None
    output: Any = None

    def take_usage(self, usage: Any) -> None:
        tokens = tokens_from_usage(usage)
        if tokens is not None:
            self.input_tokens, self.output_tokens, self.total_tokens = tokens


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tokens_from_usage(usage: Any) -> tuple[int | None, int | None, int | None] | None:
    """(input, output, total) from a ``usage`` object of any OpenAI endpoint, or None.

    Chat and text completions say ``prompt_tokens``/``completion_tokens``, embeddings only
    ``prompt_tokens``, the Responses API ``input_tokens``/``output_tokens``.
    """
    if not isinstance(usage, dict):
        return None
    input_tokens = _int_or_none(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = _int_or_none(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _int_or_none(usage.get("total_tokens"))
    if input_tokens is None and output_tokens is None and total is None:
        return None
    return input_tokens, output_tokens, total


def error_message(payload: Any) -> str | None:
    """The message of an OpenAI-shaped error body (``{"error": {"message": ...}}``)."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message is not None else json.dumps(error)[:500]
    if isinstance(error, str):
        return error
    return None


def _output_of(payload: dict[str, Any]) -> Any:
    # What a reader of the timeline wants: the answer, not the envelope or the vectors.
    if "choices" in payload:
        return [
            choice.get("message", choice.get("text")) if isinstance(choice, dict) else choice
            for choice in payload["choices"] or ()
        ]
    if payload.get("object") == "response":
        return payload.get("output")
    return None


def outcome_from_body(body: bytes, status: int, *, capture: bool) -> CallOutcome:
    """Read a whole (non-streamed) response body; a body that is not JSON gives what it can."""
    outcome = CallOutcome()
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if status >= 400:
        message = error_message(payload)
        if message is None:
            message = body[:500].decode("utf-8", "replace") or "(empty body)"
        outcome.error = f"upstream HTTP {status}: {message}"
        return outcome
    if not isinstance(payload, dict):
        return outcome
    outcome.take_usage(payload.get("usage"))
    model = payload.get("model")
    outcome.model = model if isinstance(model, str) else None
    if capture:
        outcome.output = _output_of(payload)
    return outcome


class StreamScanner:
    """Reads an SSE stream's events as its bytes pass through, keeping only what it needs.

    Usage comes from the final chunk of chat and text completions (when the request set
    ``stream_options.include_usage``) and from the Responses API's ``response.completed``
    event; an ``error`` event marks the call failed. With ``capture`` the text deltas are
    joined into the output, up to ``capture_limit`` characters.
    """

    def __init__(self, *, capture: bool, capture_limit: int = 16_384) -> None:
        self.outcome = CallOutcome()
        self._capture = capture
        self._capture_limit = capture_limit
        self._text: list[str] = []
        self._text_chars = 0
        self._partial = b""
        self._skipping_long_line = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream (any split: lines may span chunks)."""
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        for line in lines:
            if self._skipping_long_line:
                self._skipping_long_line = False  # this is the end of the line being skipped
                continue
            self._line(line)
        if len(self._partial) > MAX_SSE_LINE_BYTES:
            self._partial = b""
            self._skipping_long_line = True

    def finish(self) -> CallOutcome:
        """The outcome once the stream ended (a last line without a newline is read too)."""
        if self._partial and not self._skipping_long_line:
            self._line(self._partial)
        self._partial = b""
        if self._text:
            self.outcome.output = "".join(self._text)
        return self.outcome

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return  # comments, "event:" and "id:" lines, blank separators
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            return
        # Parse only events that can matter: JSON decoding every chunk costs more than the copy.
        if not (self._capture or b'"usage"' in data or b'"error"' in data):
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        if isinstance(event, dict):
            self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        outcome = self.outcome
        if "usage" in event:
            outcome.take_usage(event["usage"])
        response = event.get("response")
        if isinstance(response, dict):  # Responses API: response.completed and friends
            outcome.take_usage(response.get("usage"))
            if event.get("type") == "response.failed":
                outcome.error = f"upstream stream: {error_message(response) or 'response.failed'}"
        if outcome.model is None and isinstance(event.get("model"), str):
            outcome.model = event["model"]
        message = error_message(event)
        if message is not None:
            outcome.error = f"upstream stream: {message}"
        if self._capture:
            self._collect_text(event)

    def _collect_text(self, event: dict[str, Any]) -> None:
        if self._text_chars >= self._capture_limit:
            return
        text: Any = None
        if event.get("type") == "response.output_text.delta":
            text = event.get("delta")
        else:
            choices = event.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                choice = choices[0]
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str) and text:
            text = text[: self._capture_limit - self._text_chars]
            self._text.append(text)
            self._text_chars += len(text)
