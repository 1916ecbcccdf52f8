"""The autogen-core versions this adapter supports, as data (mirrored by the ``instruments`` extra).

The model-client interface it hooks (``autogen_core.models.ChatCompletionClient``) lives in
autogen-core, which autogen-agentchat and autogen-ext pin to the same version. The oldest and
the newest ends of the range are each tested by a nox session.
"""

from __future__ import annotations

_instruments = ("autogen-core >= 0.4.9, < 0.8",)
