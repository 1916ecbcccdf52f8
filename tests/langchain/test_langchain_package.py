"""The distribution's shape: public names, the supported range as data, the entry point."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import agentsession_langchain
from agentsession._instrumentor import check_requirements
from agentsession_langchain import LangChainInstrumentor, _package

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PACKAGE = Path(__file__).resolve().parents[2] / "packages" / "agentsession-langchain"


def pyproject() -> dict[str, object]:
    with (PACKAGE / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name of the package, sorted."""
    public = {name for name in vars(agentsession_langchain) if not name.startswith("_")}
    public -= {"annotations"}
    assert agentsession_langchain.__all__ == sorted(agentsession_langchain.__all__)
    assert set(agentsession_langchain.__all__) == public


def test_instruments_extra_is_the_supported_range() -> None:
    """pyproject's `instruments` extra equals _package._instruments, which the instrumentor uses."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert tuple(project["optional-dependencies"]["instruments"]) == _package._instruments
    assert LangChainInstrumentor.instruments == _package._instruments
    assert "langchain-core" not in str(project["dependencies"])  # the framework is optional


def test_installed_langchain_core_is_in_the_supported_range() -> None:
    """The langchain-core these tests run against is one the package declares it supports."""
    assert check_requirements(_package._instruments) == []


def test_entry_point_names_the_instrumentor() -> None:
    """agentsession.instrumentors -> langchain = agentsession_langchain:LangChainInstrumentor."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    entry_points = project["entry-points"]["agentsession.instrumentors"]
    assert entry_points == {"langchain": "agentsession_langchain:LangChainInstrumentor"}
    installed = metadata.entry_points(group="agentsession.instrumentors")
    (found,) = [ep for ep in installed if ep.name == "langchain"]
    assert found.load() is LangChainInstrumentor


def test_version_matches_the_distribution() -> None:
    """__version__ is the distribution's version."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert agentsession_langchain.__version__ == project["version"]
