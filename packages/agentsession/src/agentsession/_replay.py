"""How a session replays: steps nested under their parent steps, and state changes between steps.

Shared by the terminal timeline and the explorer's API, so both show the same structure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["StateDiff", "state_diff", "step_tree"]


def step_tree(
    links: Sequence[tuple[str, str | None]],
) -> tuple[list[tuple[int, int]], dict[int, int]]:
    """Steps nested under their parents: (position, depth) pairs in display order, and parents.

    ``links`` holds each step's (trace_id, parent_trace_id), in step order. A step's parent is
    the first step whose trace_id is its parent_trace_id; the second result maps the position
    of each step that has one to its parent's. Roots come in step order, each followed by its
    children, depth first. A link that would close a cycle is dropped (that of the cycle's
    earliest step), so every step is placed exactly once. Linear in the number of steps.
    """
    first_by_trace: dict[str, int] = {}
    for i, (trace_id, _) in enumerate(links):
        first_by_trace.setdefault(trace_id, i)
    parent: dict[int, int] = {}
    for i, (_, parent_trace_id) in enumerate(links):
        p = first_by_trace.get(parent_trace_id) if parent_trace_id else None
        if p is not None and p != i:
            parent[i] = p
    walked = bytearray(len(links))  # 0: not yet, 1: on the current walk, 2: ends at a root
    for i in range(len(links)):
        path: list[int] = []
        node: int | None = i
        while node is not None and not walked[node]:
            walked[node] = 1
            path.append(node)
            node = parent.get(node)
        if node is not None and walked[node] == 1:  # the walk came back onto itself: a cycle
            del parent[min(path[path.index(node) :])]
        for step in path:
            walked[step] = 2
    children: dict[int, list[int]] = {}
    for child, p in sorted(parent.items()):
        children.setdefault(p, []).append(child)
    placed: list[tuple[int, int]] = []
    stack = [(i, 0) for i in reversed(range(len(links))) if i not in parent]
    while stack:
        i, depth = stack.pop()
        placed.append((i, depth))
        below = children.get(i)
        if below:
            stack.extend([(c, depth + 1) for c in reversed(below)])
    return placed, parent


class StateDiff(NamedTuple):
    """How a state differs from the one before: its keys added, changed and removed."""

    added: list[str]
    changed: list[str]
    removed: list[str]


def state_diff(previous: Mapping[str, Any], current: Mapping[str, Any]) -> StateDiff:
    """The keys ``current`` added, changed (by ``!=``) or removed, each in its state's order."""
    return StateDiff(
        [key for key in current if key not in previous],
        [key for key, value in current.items() if key in previous and previous[key] != value],
        [key for key in previous if key not in current],
    )
