"""An offline stand-in for an OpenAI-compatible model server, for trying the recording proxy.

    python examples/proxy_fake_upstream.py

prints the base URL to pass to ``agentsession proxy --upstream`` and answers every chat,
completion, embedding and Responses call with a canned reply (streamed when asked) until
Ctrl-C. See examples/proxy_quickstart.md.
"""

from __future__ import annotations

import contextlib
import threading

from agentsession.testing import FakeOpenAIServer


def main() -> None:
    with FakeOpenAIServer() as server:
        print(f"fake upstream: {server.base_url}", flush=True)
        print(f"next: agentsession proxy --upstream {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
            threading.Event().wait()


if __name__ == "__main__":
    main()
