"""Session scores: a judgement of a whole session, given while it runs or long after."""

from __future__ import annotations

from pydantic import ValidationError

from ._emitter import Emitter
from ._errors import InvalidScoreError
from ._ids import validate_session_id
from ._models import Score
from ._worker import emitter_for
from .backends._base import SessionWriter
from .backends._registry import backend_from_url

__all__ = ["new_score", "score_session"]


def new_score(
    session_id: str,
    name: str,
    value: float | bool | str,
    comment: str | None = None,
    *,
    source: str | None = None,
) -> Score:
    """A validated :class:`Score`; raises InvalidScoreError naming the field that breaks a rule."""
    given: object = value  # callers without a type checker may pass anything
    if not isinstance(given, (int, float, str)):  # bool is an int
        raise InvalidScoreError(
            f"score value must be a number, a boolean or a label (str), got {type(given).__name__}",
            field="value",
        )
    if isinstance(given, int) and not isinstance(given, bool):
        try:
            value = float(given)
        except OverflowError:
            raise InvalidScoreError(
                f"score value must be a finite number, got an integer of {given.bit_length()} bits",
                field="value",
            ) from None
    try:
        return Score(session_id=session_id, name=name, value=value, comment=comment, source=source)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "value"
        message = str(error["msg"]).removeprefix("Value error, ")
        separator = " " if message.startswith("must") else ": "
        raise InvalidScoreError(f"score {field}{separator}{message}", field=field) from None


def score_session(
    session_id: str,
    name: str,
    value: float | bool | str,
    comment: str | None = None,
    *,
    backend: SessionWriter | str | None = None,
    source: str | None = None,
) -> Score:
    """Score a session by its id, e.g. from an evaluation script run after the session ended.

    ``value`` is a number, a boolean or a label of at most 100 characters. A later score with
    the same name replaces this one. Like every event the score goes through the background
    writer of ``backend`` (default: the default backend); a backend given as a URL is opened,
    written and closed within the call. Returns the score recorded.
    """
    validate_session_id(session_id)
    score = new_score(session_id, name, value, comment, source=source)
    if isinstance(backend, str):
        # Nobody else holds this backend object, so writing on this thread is safe.
        emitter = Emitter(backend_from_url(backend), sync=True)
        emitter.emit(score)
        emitter.close()
    else:
        emitter_for(backend).emit(score)
    return score
