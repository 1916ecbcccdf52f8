"""The adapters' instrument()/uninstrument() contract and the supported-version check."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentsession._instrumentor import Instrumentor, check_requirements


class RecordingInstrumentor(Instrumentor):
    instruments = ("pydantic >= 2.0, < 99",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def _instrument(self, **options: Any) -> None:
        self.calls.append(f"instrument {sorted(options)}")

    def _uninstrument(self) -> None:
        self.calls.append("uninstrument")


def test_instrument_and_uninstrument_are_idempotent() -> None:
    """A second instrument() or uninstrument() does nothing and says so by returning False."""
    instrumentor = RecordingInstrumentor()
    assert instrumentor.instrument(capture=False) is True
    assert instrumentor.instrument() is False
    assert instrumentor.is_instrumented
    assert instrumentor.uninstrument() is True
    assert instrumentor.uninstrument() is False
    assert instrumentor.calls == ["instrument ['capture']", "uninstrument"]


def test_instrument_again_after_uninstrument() -> None:
    """The contract is reversible any number of times."""
    instrumentor = RecordingInstrumentor()
    for _ in range(2):
        instrumentor.instrument()
        instrumentor.uninstrument()
    assert instrumentor.calls == ["instrument []", "uninstrument"] * 2


def test_missing_framework_is_logged_and_not_instrumented(caplog: pytest.LogCaptureFixture) -> None:
    """Instrumenting a framework that is not installed warns and returns False, never raises."""

    class Missing(RecordingInstrumentor):
        instruments = ("no-such-framework-xyz >= 1.0",)

    instrumentor = Missing()
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        assert instrumentor.instrument() is False
    assert not instrumentor.is_instrumented
    assert instrumentor.calls == []
    assert "no-such-framework-xyz is not installed" in caplog.text


def test_version_outside_range_warns_and_instruments(caplog: pytest.LogCaptureFixture) -> None:
    """A framework newer than the declared range is instrumented anyway, with one warning."""

    class TooNew(RecordingInstrumentor):
        instruments = ("pydantic >= 1.0, < 2.0",)

    instrumentor = TooNew()
    with caplog.at_level(logging.WARNING, logger="agentsession"):
        assert instrumentor.instrument() is True
    assert "outside 'pydantic >= 1.0, < 2.0'" in caplog.text
    assert "instrumenting anyway" in caplog.text


@pytest.mark.parametrize(
    ("requirement", "met"),
    [
        ("pydantic >= 2.0", True),
        ("pydantic >= 2.0, < 3", True),
        ("pydantic < 2", False),
        ("pydantic > 99.0", False),
        ("pydantic != 0.1", True),
        ("pydantic", True),
    ],
)
def test_check_requirements_compares_release_numbers(requirement: str, met: bool) -> None:
    """Each clause is compared on release numbers against the installed distribution."""
    assert (check_requirements([requirement]) == []) is met


def test_unreadable_requirement_is_a_programming_error() -> None:
    """A malformed requirement in an adapter's data fails loudly in its tests, not silently."""
    with pytest.raises(ValueError, match="cannot read '~= 2'"):
        check_requirements(["pydantic ~= 2"])
