"""The public surface of ``agentsession``: what ``__all__`` promises and what the issue names."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import agentsession

ISSUE_NAMES = [
    "SessionTracker",
    "using_session",
    "current_session",
    "InvalidSessionIdError",
    "StateTooLargeError",
    "Step",
    "SessionSummary",
    "MemoryBackend",
    "JsonlBackend",
    "SQLiteBackend",
    "parse_headers",
    "flush",
    "shutdown",
]


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }


def test_all_is_sorted() -> None:
    """__all__ is kept in sorted order, so additions are easy to review."""
    assert agentsession.__all__ == sorted(agentsession.__all__)


def test_all_has_no_duplicates() -> None:
    """Each public name is listed once."""
    assert len(set(agentsession.__all__)) == len(agentsession.__all__)


def test_all_lists_every_public_name() -> None:
    """Every public name defined at the top level is in __all__, and nothing else is."""
    assert set(agentsession.__all__) == _public_names(agentsession)


def test_every_listed_name_is_importable() -> None:
    """``from agentsession import *`` provides every name in __all__, none of them None."""
    namespace: dict[str, object] = {}
    exec("from agentsession import *", namespace)
    for name in agentsession.__all__:
        assert namespace.get(name) is not None, name


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_names_from_the_issue_are_importable(name: str) -> None:
    """Each class, function and error named in the issue is importable from ``agentsession``."""
    value = getattr(importlib.import_module("agentsession"), name)
    assert inspect.isclass(value) or callable(value), name
    assert name in agentsession.__all__


@pytest.mark.parametrize("name", ["InvalidSessionIdError", "StateTooLargeError"])
def test_errors_share_the_package_base_class(name: str) -> None:
    """The package's errors derive from AgentSessionError and ValueError."""
    error = getattr(agentsession, name)
    assert issubclass(error, agentsession.AgentSessionError)
    assert issubclass(error, ValueError)


def test_backends_implement_the_protocol() -> None:
    """The built-in backends satisfy the Backend protocol (write and read sides)."""
    assert isinstance(agentsession.MemoryBackend(), agentsession.Backend)
    for name in ("JsonlBackend", "SQLiteBackend"):
        cls = getattr(agentsession, name)
        assert inspect.isclass(cls), name
        for method in ("write", "flush", "close", "list_sessions", "get_session", "list_steps"):
            assert callable(getattr(cls, method, None)), f"{name}.{method}"


def test_testing_helpers_are_importable() -> None:
    """agentsession.testing provides capture_steps and the helpers it documents."""
    testing = importlib.import_module("agentsession.testing")
    assert callable(testing.capture_steps)
    assert set(testing.__all__) <= _public_names(testing)
    assert "capture_steps" in testing.__all__


def test_version_is_exposed() -> None:
    """The package exposes a version string matching its distribution metadata."""
    from importlib.metadata import version

    assert agentsession.__version__ == version("agentsession")


def test_instrumentation_module_lists_what_adapters_use() -> None:
    """agentsession.instrumentation's sorted __all__ is exactly its public names."""
    instrumentation = importlib.import_module("agentsession.instrumentation")
    assert instrumentation.__all__ == sorted(instrumentation.__all__)
    assert set(instrumentation.__all__) == _public_names(instrumentation)
