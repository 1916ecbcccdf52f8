"""Our own faults and warnings: counted, logged once, and remembered within a bound."""

from __future__ import annotations

import logging

import pytest

from agentsession import _health


def test_remembered_warning_keys_are_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """warn_once remembers only the latest WARNED_KEYS_MAX keys: one pushed out warns again,
    one still remembered (recently seen) does not."""
    monkeypatch.setattr(_health, "WARNED_KEYS_MAX", 3)
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        for key in ("a", "b", "c", "a", "d", "b", "a", "d"):
            _health.warn_once(key, "warning %s", key)
    # "a" was seen again before "d" came in, so "b" was the one pushed out.
    assert [r.getMessage() for r in caplog.records] == [
        "warning a",
        "warning b",
        "warning c",
        "warning d",
        "warning b",
    ]
