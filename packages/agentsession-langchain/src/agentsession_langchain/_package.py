"""The langchain-core versions this adapter supports, as data (the ``instruments`` extra too).

The oldest and the newest ends of the range are each tested by a nox session.
"""

from __future__ import annotations

_instruments = ("langchain-core >= 0.3.10, < 2",)
