"""Where sessions are stored: the plug-in protocols and the built-in backends."""

from __future__ import annotations

from ._base import Backend, SessionReader, SessionWriter
from ._jsonl import JsonlBackend
from ._memory import MemoryBackend
from ._registry import ENTRY_POINT_GROUP, backend_from_url
from ._sqlite import SQLiteBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "JsonlBackend",
    "MemoryBackend",
    "SQLiteBackend",
    "SessionReader",
    "SessionWriter",
    "backend_from_url",
]
