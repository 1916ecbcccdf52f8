"""The contract every framework adapter follows: ``instrument()`` / ``uninstrument()``.

Modelled on OpenTelemetry's ``BaseInstrumentor``: both calls are idempotent and thread-safe,
the supported framework versions are data (``instruments``), and a framework outside that range
is reported with one warning rather than an exception, so that a framework upgrade never stops
an application from starting.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NamedTuple

from ._health import warn_once

__all__ = ["Instrumentor", "UnmetRequirement", "check_requirements"]

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9A-Za-z.]*)\s*$")
_RELEASE = re.compile(r"^([0-9]+(?:\.[0-9]+)*)")


class UnmetRequirement(NamedTuple):
    """A requirement the installed distributions do not meet; ``installed`` is None if absent."""

    name: str
    requirement: str
    installed: str | None

    def __str__(self) -> str:
        if self.installed is None:
            return f"{self.name} is not installed (needs {self.requirement!r})"
        return f"{self.name} {self.installed} is installed, outside {self.requirement!r}"


def _release(version: str) -> tuple[int, ...]:
    match = _RELEASE.match(version)
    parts = tuple(int(part) for part in match.group(1).split(".")) if match else (0,)
    return parts + (0,) * (4 - len(parts))


def _satisfies(installed: str, operator: str, bound: str) -> bool:
    have, want = _release(installed), _release(bound)
    return {
        ">=": have >= want,
        "<=": have <= want,
        ">": have > want,
        "<": have < want,
        "==": have == want,
        "!=": have != want,
    }[operator]


def check_requirements(requirements: Sequence[str]) -> list[UnmetRequirement]:
    """Check ``"name >= 1.0, < 2"`` style requirements against what is installed.

    Only release numbers are compared (pre-release tags are ignored): this is a guard that
    explains a likely failure, not a resolver. Returns one problem per unmet requirement.
    """
    problems: list[UnmetRequirement] = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        name, clauses = match.group(1), match.group(2)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(UnmetRequirement(name, requirement, None))
            continue
        for clause in filter(None, (part.strip() for part in clauses.split(","))):
            found = _CLAUSE.match(clause)
            if found is None:
                raise ValueError(f"cannot read {clause!r} in the requirement {requirement!r}")
            if not _satisfies(installed, found.group(1), found.group(2)):
                problems.append(UnmetRequirement(name, requirement, installed))
                break
    return problems


class Instrumentor(ABC):
    """Hooks one framework's own extension point so that its LLM calls become session steps.

    Subclasses set :attr:`instruments` and implement :meth:`_instrument` and
    :meth:`_uninstrument`, which must reverse exactly what :meth:`_instrument` did.
    """

    instruments: tuple[str, ...] = ()
    """The framework distributions and versions this adapter supports, e.g. ``"x >= 1, < 2"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instrumented = False

    @property
    def is_instrumented(self) -> bool:
        """Whether :meth:`instrument` is in effect (and :meth:`uninstrument` would undo it)."""
        return self._instrumented

    def instrument(self, **options: Any) -> bool:
        """Start recording; returns False when already instrumented or the framework is absent.

        A framework version outside :attr:`instruments` is logged once and instrumented anyway.
        """
        with self._lock:
            if self._instrumented:
                return False
            problems = check_requirements(self.instruments)
            for problem in problems:
                warn_once(
                    f"instrument:{type(self).__name__}:{problem.requirement}",
                    "agentsession: %s: %s%s",
                    type(self).__name__,
                    problem,
                    "" if problem.installed is None else "; instrumenting anyway",
                )
            if any(problem.installed is None for problem in problems):
                return False
            self._instrument(**options)
            self._instrumented = True
            return True

    def uninstrument(self) -> bool:
        """Stop recording and remove every hook; returns False when there was nothing to undo."""
        with self._lock:
            if not self._instrumented:
                return False
            self._uninstrument()
            self._instrumented = False
            return True

    @abstractmethod
    def _instrument(self, **options: Any) -> None:
        """Add the hooks; called under the lock, once per :meth:`instrument` that succeeds."""

    @abstractmethod
    def _uninstrument(self) -> None:
        """Remove exactly the hooks :meth:`_instrument` added; called under the lock."""
