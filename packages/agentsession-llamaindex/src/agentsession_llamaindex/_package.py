"""The llama-index-core versions this adapter supports (checked, not enforced, by instrument())."""

from __future__ import annotations

_instruments = ("llama-index-core >= 0.12.23, < 0.15",)
