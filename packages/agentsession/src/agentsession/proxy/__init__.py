"""An OpenAI-compatible recording proxy: every LLM call passing through becomes a step.

Run it with ``agentsession proxy --upstream https://api.openai.com/v1`` and point an OpenAI
client at ``http://127.0.0.1:8787/v1`` with the session headers of a tracker
(``session.get_headers()``). Embed it with :func:`create_proxy_app`, a Starlette app.

It needs the ``proxy`` extra (``pip install 'agentsession[proxy]'``: Starlette, uvicorn and
httpx2; plain httpx works too). This package imports them only when the app is asked for, so
``agentsession`` itself and its command line work without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_exports, missing_modules

if TYPE_CHECKING:
    from ._app import create_proxy_app

__all__ = ["INSTALL_HINT", "create_proxy_app", "missing_dependencies"]

INSTALL_HINT = "pip install 'agentsession[proxy]'"


def missing_dependencies() -> list[str]:
    """The distributions of the ``proxy`` extra that are not installed."""
    return missing_modules("starlette", "uvicorn", ("httpx2", "httpx"))


__getattr__ = lazy_exports(
    __name__, {"create_proxy_app": "._app"}, missing_dependencies, INSTALL_HINT
)
