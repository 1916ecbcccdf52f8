"""Every core test starts from default settings, empty counters and an in-memory default backend
(the ``isolated`` fixture of the root conftest.py)."""

from __future__ import annotations

import pytest

from agentsession import MemoryBackend


@pytest.fixture(autouse=True)
def _fresh_process_state(isolated: MemoryBackend) -> None:
    """Each test gets fresh agentsession state."""
