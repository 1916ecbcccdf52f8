"""The session explorer: a JSON API, its OpenAPI document and a web page to replay sessions.

Run it with ``agentsession serve`` (http://127.0.0.1:3001) or embed :func:`create_explorer_app`,
a Starlette app, in your own server. It needs the ``explorer`` extra
(``pip install 'agentsession[explorer]'``: Starlette and uvicorn); this package imports them
only when the app is asked for, so ``agentsession`` and its command line work without them.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_explorer_app

__all__ = ["INSTALL_HINT", "create_explorer_app", "missing_dependencies"]

INSTALL_HINT = "pip install 'agentsession[explorer]'"
_DEPENDENCIES = ("starlette", "uvicorn")


def missing_dependencies() -> list[str]:
    """The distributions of the ``explorer`` extra that are not installed."""
    return [name for name in _DEPENDENCIES if find_spec(name) is None]


def __getattr__(name: str) -> Any:
    # PEP 562: the app (and Starlette with it) is imported on first use, not with the package.
    if name == "create_explorer_app":
        missing = missing_dependencies()
        if missing:
            raise ImportError(
                f"agentsession.explorer needs {', '.join(missing)}, not installed: {INSTALL_HINT}"
            )
        from ._app import create_explorer_app

        return create_explorer_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
