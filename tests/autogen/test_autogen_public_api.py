"""The adapter's public surface and its packaging data."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import agentsession_autogen
from agentsession_autogen import _package

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).parents[2] / "packages" / "agentsession-autogen" / "pyproject.toml"


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name the package defines, sorted."""
    public = {
        name
        for name in vars(agentsession_autogen)
        if not name.startswith("_") and name not in {"annotations"}
    }
    assert agentsession_autogen.__all__ == sorted(agentsession_autogen.__all__)
    assert set(agentsession_autogen.__all__) == public


def test_instruments_extra_matches_the_supported_range() -> None:
    """pyproject's `instruments` extra is the range _package.py declares as data."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert tuple(project["optional-dependencies"]["instruments"]) == _package._instruments
    assert agentsession_autogen.AutoGenInstrumentor.instruments == _package._instruments
    assert project["version"] == agentsession_autogen.__version__


def test_entry_point_names_the_instrumentor() -> None:
    """The agentsession.instrumentors entry point `autogen` loads AutoGenInstrumentor."""
    points = metadata.entry_points(group="agentsession.instrumentors")
    (point,) = [point for point in points if point.name == "autogen"]
    assert point.load() is agentsession_autogen.AutoGenInstrumentor


def test_installed_autogen_is_in_the_supported_range() -> None:
    """The AutoGen under test is one the adapter claims to support (no silent drift)."""
    from agentsession._instrumentor import check_requirements

    assert check_requirements(_package._instruments) == []
