"""Process-wide settings, read from ``AGENTSESSION_*`` environment variables and ``configure()``."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ._dialects import DEFAULT_HEADER_BUDGET_BYTES, Dialect, parse_dialects
from ._headers import DEFAULT_HEADER_PREFIX, header_names
from ._state import StateOverflow

logger = logging.getLogger("agentsession")

__all__ = ["ENV_PREFIX", "Settings", "configure", "get_settings"]

ENV_PREFIX = "AGENTSESSION_"
DEFAULT_DB_PATH = Path(".agentsession") / "sessions.db"
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Every knob with its default; each field is read from ``AGENTSESSION_<FIELD>``."""

    backend_url: str = field(default_factory=lambda: f"sqlite://{DEFAULT_DB_PATH}")
    """Where steps go when a tracker names no backend; relative paths are under the cwd."""
    auto_session_id: bool = True
    """Adapters start a session with a new UUIDv7 id when none is given or found."""
    max_steps: int | None = None
    """Steps past this many in a session are dropped (one warning; the summary counts them)."""
    timeout_s: float | None = None
    """A session idle longer than this that was never ended reads as ``timed_out``."""
    state_limit_bytes: int = 10_240
    """Cap on a state snapshot's compact UTF-8 JSON."""
    state_overflow: StateOverflow = "truncate"
    """``truncate``: the largest values become a marker; ``error``: raise StateTooLargeError."""
    header_prefix: str = DEFAULT_HEADER_PREFIX
    """Prefix of the headers ``get_headers()`` builds and ``parse_headers()`` reads."""
    header_dialects: tuple[Dialect, ...] = ("traceforge",)
    """Which proxies' headers ``get_headers()`` writes: traceforge, helicone, litellm, baggage."""
    header_budget_bytes: int = DEFAULT_HEADER_BUDGET_BYTES
    """Cap on the state header; a larger state is cut by the state overflow rule."""
    capture_content: bool = True
    """Adapters keep the inputs and outputs of LLM and tool calls (capped); off: metadata only."""
    content_limit_bytes: int = 16_384
    """Cap on each captured input, output and tool-call field."""
    queue_size: int = 10_000
    """Events the background worker may hold; past it new events are dropped and counted."""
    batch_size: int = 500
    """Most events the worker hands the backend at once."""
    flush_interval_s: float = 0.2
    """Longest an event waits in the queue before the worker writes it."""
    sync: bool = False
    """Write on the caller's thread (tests, debugging); the background worker is not used."""


_PARSERS: dict[str, Callable[[str], Any]] = {}


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _parse_optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    def parse_optional(raw: str) -> T | None:
        return None if raw.strip().lower() in {"", "none", "0"} else parse(raw)

    return parse_optional


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a positive number")
    return value


def _parse_state_limit(raw: str) -> int:
    value = int(raw)
    if value < 2:  # "{}" is the smallest state there is
        raise ValueError("expected an integer of at least 2")
    return value


def _parse_header_prefix(raw: str) -> str:
    # Checked here so that a bad variable is ignored, not raised from every get_headers().
    header_names(raw)
    return raw


def _parse_overflow(raw: str) -> StateOverflow:
    if raw == "truncate":
        return "truncate"
    if raw == "error":
        return "error"
    raise ValueError("expected 'truncate' or 'error'")


_PARSERS.update(
    backend_url=str,
    auto_session_id=_parse_bool,
    max_steps=_parse_optional(_parse_positive_int),
    timeout_s=_parse_optional(_parse_positive_float),
    state_limit_bytes=_parse_state_limit,
    state_overflow=_parse_overflow,
    header_prefix=_parse_header_prefix,
    header_dialects=parse_dialects,
    header_budget_bytes=_parse_positive_int,
    capture_content=_parse_bool,
    content_limit_bytes=_parse_positive_int,
    queue_size=_parse_positive_int,
    batch_size=_parse_positive_int,
    flush_interval_s=_parse_positive_float,
    sync=_parse_bool,
)


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every ``AGENTSESSION_*`` variable; a bad value is logged (naming it) and ignored."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for settings_field in dataclasses.fields(Settings):
        name = ENV_PREFIX + settings_field.name.upper()
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            values[settings_field.name] = _PARSERS[settings_field.name](raw)
        except ValueError as exc:
            logger.warning("ignoring %s=%r: %s", name, raw[:100], exc)
    return Settings(**values)


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings in force: the environment at first use, then whatever ``configure`` changed."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = settings_from_env()
    return _settings


def configure(**overrides: Any) -> Settings:
    """Change settings for this process, e.g. ``configure(sync=True, backend_url="memory://")``.

    Unknown names raise TypeError; a value its environment variable would not accept raises
    ValueError naming the setting. Trackers created afterwards use the new values; the default
    backend is rebuilt the next time it is needed if ``backend_url`` changed.
    """
    global _settings
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    checked = {name: _checked(name, value) for name, value in overrides.items()}
    with _lock:
        _settings = dataclasses.replace(_settings or settings_from_env(), **checked)
        return _settings


def _checked(name: str, value: Any) -> Any:
    # The same rules as the environment variable, so that a bad value fails here and not in
    # every SessionTracker() built afterwards.
    raw = value if name == "header_dialects" and not isinstance(value, str) else str(value)
    try:
        return _PARSERS[name](raw)
    except ValueError as exc:
        raise ValueError(f"configure({name}={value!r}): {exc}") from None


def reset_settings() -> None:
    """Forget ``configure`` calls and read the environment again at next use (for tests)."""
    global _settings
    with _lock:
        _settings = None
