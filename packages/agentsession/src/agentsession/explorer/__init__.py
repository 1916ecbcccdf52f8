"""The session explorer: a JSON API, its OpenAPI document and a web page to replay sessions.

Run it with ``agentsession serve`` (http://127.0.0.1:3001) or embed :func:`create_explorer_app`,
a Starlette app, in your own server. It needs the ``explorer`` extra
(``pip install 'agentsession[explorer]'``: Starlette and uvicorn); this package imports them
only when the app is asked for, so ``agentsession`` and its command line work without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_exports, missing_modules

if TYPE_CHECKING:
    from ._app import create_explorer_app

__all__ = ["INSTALL_HINT", "create_explorer_app", "missing_dependencies"]

INSTALL_HINT = "pip install 'agentsession[explorer]'"


def missing_dependencies() -> list[str]:
    """The distributions of the ``explorer`` extra that are not installed."""
    return missing_modules("starlette", "uvicorn")


__getattr__ = lazy_exports(
    __name__, {"create_explorer_app": "._app"}, missing_dependencies, INSTALL_HINT
)
