"""A backend that appends events to a JSON Lines file: easy to read with ``jq``, grep or a diff."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic_core import from_json, to_json

from agentsession._models import (
    Score,
    SessionEnded,
    SessionEvent,
    SessionFilter,
    SessionPage,
    SessionStarted,
    SessionSummary,
    Step,
)

from ._base import SummaryBuilder, check_step_limit, event_time, page_of_steps, paginate

__all__ = ["JsonlBackend"]

logger = logging.getLogger("agentsession")

_TYPES: dict[type[SessionEvent], str] = {
    SessionStarted: "session_started",
    Step: "step",
    SessionEnded: "session_ended",
    Score: "score",
}
_MODELS: dict[str, type[SessionEvent]] = {name: model for model, name in _TYPES.items()}
# Each line is the event's own JSON with a "type" key put first, so `jq 'select(.type == "step")'`
# works without knowing the models.
_PREFIXES = {model: b'{"type":"' + name.encode() + b'",' for model, name in _TYPES.items()}


def _encode(event: SessionEvent) -> bytes:
    # serialize_unknown: an exotic object in captured input is written as its str(), rather
    # than failing the whole batch.
    body = to_json(event, serialize_unknown=True)
    return _PREFIXES[type(event)] + body[1:] + b"\n"


class _Replay:
    """Everything a file holds, folded: summaries and steps by session."""

    def __init__(self) -> None:
        self.builders: dict[str, SummaryBuilder] = {}
        self.steps: dict[str, dict[int, Step]] = {}

    def apply(self, event: SessionEvent) -> None:
        if isinstance(event, Step):
            steps = self.steps.setdefault(event.session_id, {})
            if event.step_index in steps:
                return  # written twice by a retried batch: count it once, like the SQL backend
            steps[event.step_index] = event
        builder = self.builders.get(event.session_id)
        if builder is None:
            first_seen = event_time(event)
            builder = self.builders[event.session_id] = SummaryBuilder(event.session_id, first_seen)
        builder.apply(event)


class JsonlBackend:
    """Appends one JSON object per event per line; reads replay the whole file.

    Meant for debugging, tests and small runs: a read costs a pass over the file (cached until
    the file changes). A line left half-written by a crash is skipped with a warning, and a step
    written twice (a retried batch) is counted once.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._check_tail = True
        self._closed = False
        self._cache: tuple[tuple[int, int, int], _Replay] | None = None

    def __repr__(self) -> str:
        return f"JsonlBackend({str(self.path)!r})"

    def write(self, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        payload = b"".join([_encode(event) for event in events])
        with self._lock:
            file = self._open()
            if self._check_tail:
                self._end_torn_line(file)
            try:
                file.write(payload)
                file.flush()
            except BaseException:
                # Part of the batch may be on disk; the retried batch must start on a new line.
                self._check_tail = True
                raise

    def _open(self) -> IO[bytes]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open across writes
        return self._file

    def _end_torn_line(self, file: IO[bytes]) -> None:
        """Finish a line a crash left half-written, so the next event is not glued onto it."""
        file.flush()
        with open(self.path, "rb") as reader:
            reader.seek(0, os.SEEK_END)
            if reader.tell() > 0:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    file.write(b"\n")
        self._check_tail = False

    def flush(self) -> None:
        """Push written lines to the disk (fsync)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file; reads keep working."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- read side ---------------------------------------------------------------------------

    def _replay(self) -> _Replay:
        """The file folded, from the cache while the file is unchanged."""
        with self._lock:  # not while this process is halfway through appending a batch
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return _Replay()
            version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if self._cache is not None and self._cache[0] == version:
                return self._cache[1]
            with open(self.path, "rb") as file:
                data = file.read(stat.st_size)
        replay = _Replay()
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            event = _decode(line)
            if event is not None:
                replay.apply(event)
            elif number == len(lines):
                logger.warning(
                    "%s: skipped an unfinished last line (a crash mid-write, or a write underway)",
                    self.path,
                )
            else:
                logger.warning("%s: skipped line %d, which is not an event", self.path, number)
        with self._lock:
            self._cache = (version, replay)
        return replay

    def list_sessions(
        self,
        filters: SessionFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        now = datetime.now(timezone.utc)
        summaries = [builder.summary(now) for builder in self._replay().builders.values()]
        return paginate(summaries, filters, limit, cursor)

    def get_session(self, session_id: str) -> SessionSummary | None:
        builder = self._replay().builders.get(session_id)
        return None if builder is None else builder.summary()

    def list_steps(
        self, session_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Step]:
        check_step_limit(limit)  # before reading the file
        steps = self._replay().steps.get(session_id, {})
        return page_of_steps([steps[index] for index in sorted(steps)], after, limit)


def _decode(line: bytes) -> SessionEvent | None:
    """The event a line holds, or None when it holds none (torn, edited or foreign)."""
    try:
        fields: dict[str, Any] = from_json(line)
        model = _MODELS[fields.pop("type")]
        return model.model_validate(fields)
    except Exception:  # any malformed line is skipped and reported, never fatal to a read
        return None
