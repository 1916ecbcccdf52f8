"""Settings: AGENTSESSION_* environment variables, bad values, and configure()."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from agentsession import SessionTracker, Settings, configure, get_settings
from agentsession._config import ENV_PREFIX, reset_settings, settings_from_env

# For every setting: a raw environment value and what it must parse to (never the default).
GOOD_VALUES: dict[str, tuple[str, Any]] = {
    "backend_url": ("jsonl:///tmp/agentsession-test.jsonl", "jsonl:///tmp/agentsession-test.jsonl"),
    "auto_session_id": ("false", False),
    "max_steps": ("25", 25),
    "timeout_s": ("1.5", 1.5),
    "state_limit_bytes": ("2048", 2048),
    "state_overflow": ("error", "error"),
    "header_prefix": ("X-Acme", "X-Acme"),
    "header_dialects": ("traceforge, Helicone", ("traceforge", "helicone")),
    "header_budget_bytes": ("1024", 1024),
    "capture_content": ("0", False),
    "content_limit_bytes": ("4096", 4096),
    "queue_size": ("64", 64),
    "batch_size": ("8", 8),
    "flush_interval_s": ("0.05", 0.05),
    "sync": ("yes", True),
}

# For every setting: values that must be refused (warned about and ignored).
BAD_VALUES: dict[str, list[str]] = {
    "auto_session_id": ["maybe", ""],
    "max_steps": ["-3", "ten", "2.5"],
    "timeout_s": ["-1", "soon", "nan"],
    "state_limit_bytes": ["0", "-10", "1", "10KB"],
    "state_overflow": ["drop", "TRUNCATE"],
    "header_prefix": ["X Acme", "X-\u00e9", "", "X-Acme\r\nX-Evil: 1"],
    "header_dialects": ["helicon", "", ",", "traceforge,zipkin"],
    "header_budget_bytes": ["0", "-1", "8KB"],
    "capture_content": ["sometimes"],
    "content_limit_bytes": ["0", "big"],
    "queue_size": ["0", "-1", "many"],
    "batch_size": ["0", "1e3"],
    "flush_interval_s": ["0", "-0.1", "fast"],
    "sync": ["2"],
}


def _env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def test_every_setting_has_test_values() -> None:
    """The tables above cover every field of Settings, so a new setting cannot go untested."""
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(GOOD_VALUES) == names
    assert set(BAD_VALUES) == names - {"backend_url"}


@pytest.mark.parametrize("field_name", sorted(GOOD_VALUES))
def test_each_variable_is_parsed(field_name: str) -> None:
    """AGENTSESSION_<FIELD> sets that field, parsed to its type."""
    raw, expected = GOOD_VALUES[field_name]
    assert getattr(Settings(), field_name) != expected
    settings = settings_from_env({_env_name(field_name): raw})
    assert getattr(settings, field_name) == expected
    others = {f.name for f in dataclasses.fields(Settings)} - {field_name}
    for other in others:
        assert getattr(settings, other) == getattr(Settings(), other)


def test_all_variables_together() -> None:
    """Every variable at once gives a Settings with every parsed value."""
    env = {_env_name(name): raw for name, (raw, _) in GOOD_VALUES.items()}
    settings = settings_from_env(env)
    assert {name: getattr(settings, name) for name in GOOD_VALUES} == {
        name: expected for name, (_, expected) in GOOD_VALUES.items()
    }


@pytest.mark.parametrize(
    ("field_name", "raw"), [(name, raw) for name, raws in BAD_VALUES.items() for raw in raws]
)
def test_bad_values_are_warned_about_and_ignored(
    field_name: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed value logs a warning naming the variable and the default is kept."""
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        settings = settings_from_env({_env_name(field_name): raw})
    assert getattr(settings, field_name) == getattr(Settings(), field_name)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert _env_name(field_name) in messages[0]


def test_bad_value_does_not_break_tracker_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a malformed variable in the environment, trackers still work on the default."""
    monkeypatch.setenv("AGENTSESSION_STATE_LIMIT_BYTES", "1")
    monkeypatch.setenv("AGENTSESSION_HEADER_PREFIX", "bad prefix")
    reset_settings()
    tracker = SessionTracker("cfg-bad-env-conv")
    tracker.set_state("k", "v")
    assert "X-TraceForge-Session-ID" in tracker.get_headers()


@pytest.mark.parametrize(("raw", "expected"), [("", None), ("none", None), ("0", None)])
def test_optional_limits_can_be_switched_off(raw: str, expected: None) -> None:
    """max_steps and timeout_s accept an empty value, 'none' or 0 for 'no limit'."""
    assert settings_from_env({"AGENTSESSION_MAX_STEPS": raw}).max_steps is expected
    assert settings_from_env({"AGENTSESSION_TIMEOUT_S": raw}).timeout_s is expected


def test_get_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """get_settings reads the environment at first use and keeps that result."""
    monkeypatch.setenv("AGENTSESSION_MAX_STEPS", "7")
    reset_settings()
    assert get_settings().max_steps == 7
    monkeypatch.setenv("AGENTSESSION_MAX_STEPS", "8")
    assert get_settings().max_steps == 7
    reset_settings()
    assert get_settings().max_steps == 8


def test_configure_overrides_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure() changes the named settings on top of the environment and returns them."""
    monkeypatch.setenv("AGENTSESSION_MAX_STEPS", "7")
    reset_settings()
    settings = configure(timeout_s=3.0)
    assert settings is get_settings()
    assert (settings.timeout_s, settings.max_steps) == (3.0, 7)
    configure(max_steps=9)
    assert (get_settings().timeout_s, get_settings().max_steps) == (3.0, 9)


def test_configure_applies_to_new_trackers() -> None:
    """Trackers created after configure() take its values as their defaults."""
    configure(max_steps=4, timeout_s=2.5, header_prefix="X-Configured")
    tracker = SessionTracker("cfg-new-tracker")
    assert (tracker.max_steps, tracker.timeout_s) == (4, 2.5)
    assert "X-Configured-Step-Index" in tracker.get_headers()


def test_configure_rejects_unknown_names() -> None:
    """configure() with a name that is not a setting raises TypeError naming it."""
    before = get_settings()
    with pytest.raises(TypeError, match="max_stepz"):
        configure(max_stepz=3)
    assert get_settings() == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("state_overflow", "drop"),
        ("queue_size", 0),
        ("state_limit_bytes", 1),
        ("header_prefix", "X Bad"),
        ("header_dialects", ("traceforge", "zipkin")),
        ("timeout_s", -1.0),
    ],
)
def test_configure_rejects_values_the_variable_would_not_take(name: str, value: object) -> None:
    """configure() refuses a bad value with ValueError naming the setting, and changes nothing."""
    before = get_settings()
    with pytest.raises(ValueError, match=f"configure\\({name}="):
        configure(**{name: value})
    assert get_settings() == before
    SessionTracker("cfg-still-works")  # a bad value never reaches the trackers


def test_configure_takes_typed_values() -> None:
    """configure() keeps well-typed values as they are (bools, numbers, None, dialect lists)."""
    settings = configure(
        sync=True, max_steps=None, flush_interval_s=0.5, header_dialects=["helicone", "baggage"]
    )
    assert (settings.sync, settings.max_steps, settings.flush_interval_s) == (True, None, 0.5)
    assert settings.header_dialects == ("helicone", "baggage")


def test_settings_are_immutable() -> None:
    """A Settings object cannot be changed in place; configure() is the way."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_settings().max_steps = 3  # type: ignore[misc]
