"""An OpenAI-compatible recording proxy: every LLM call passing through becomes a step.

Run it with ``agentsession proxy --upstream https://api.openai.com/v1`` and point an OpenAI
client at ``http://127.0.0.1:8787/v1`` with the session headers of a tracker
(``session.get_headers()``). Embed it with :func:`create_proxy_app`, a Starlette app.

It needs the ``proxy`` extra (``pip install 'agentsession[proxy]'``: Starlette, uvicorn and
httpx2; plain httpx works too). This package imports them only when the app is asked for, so
``agentsession`` itself and its command line work without them.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_proxy_app

__all__ = ["INSTALL_HINT", "create_proxy_app", "missing_dependencies"]

INSTALL_HINT = "pip install 'agentsession[proxy]'"


def missing_dependencies() -> list[str]:
    """The distributions of the ``proxy`` extra that are not installed."""
    missing = [name for name in ("starlette", "uvicorn") if find_spec(name) is None]
    if find_spec("httpx2") is None and find_spec("httpx") is None:
        missing.append("httpx2 (or httpx)")
    return missing


def __getattr__(name: str) -> Any:
    # PEP 562: the app (and Starlette with it) is imported on first use, not with the package.
    if name == "create_proxy_app":
        missing = missing_dependencies()
        if missing:
            raise ImportError(
                f"agentsession.proxy needs {', '.join(missing)}, not installed: {INSTALL_HINT}"
            )
        from ._app import create_proxy_app

        return create_proxy_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
