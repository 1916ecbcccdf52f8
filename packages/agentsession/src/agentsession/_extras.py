"""Parts of agentsession that need an extra (``proxy``, ``explorer``, ``otel``): what is missing,
imports.

Such a package imports its dependencies only when its app is asked for (PEP 562), so that
``agentsession`` and its command line work without them and say how to install them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.util import find_spec
from typing import Any

__all__ = ["lazy_exports", "missing_modules"]


def missing_modules(*requirements: str | tuple[str, ...]) -> list[str]:
    """The requirements that cannot be imported; a tuple is met by any one of its modules."""
    missing = []
    for requirement in requirements:
        first, *others = (requirement,) if isinstance(requirement, str) else requirement
        if not any(_importable(name) for name in (first, *others)):
            missing.append(f"{first} (or {', '.join(others)})" if others else first)
    return missing


def _importable(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    missing_dependencies: Callable[[], list[str]],
    install_hint: str,
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``exports`` (mapped to
    its submodule) on first use, or raises ImportError naming what is missing and the install."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        missing = missing_dependencies()
        if missing:
            raise ImportError(
                f"{package} needs {', '.join(missing)}, not installed: {install_hint}"
            )
        return getattr(import_module(exports[name], package), name)

    return __getattr__
