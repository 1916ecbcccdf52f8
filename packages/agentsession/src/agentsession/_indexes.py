"""Which step indexes of a session are taken, once a receiver hands indexes in from outside."""

from __future__ import annotations

__all__ = ["TakenIndexes"]


class TakenIndexes:
    """Every index below ``contiguous`` is taken, plus those in ``above``.

    Requests can arrive out of order (2 before 0), so a counter alone cannot tell a reused index
    from a late one; this stays small because ``above`` empties as the gaps fill.
    """

    __slots__ = ("above", "contiguous")

    def __init__(self, contiguous: int) -> None:
        self.contiguous = contiguous
        self.above: set[int] = set()

    def take(self, index: int) -> bool:
        """Mark ``index`` taken; False if it already was."""
        if index < self.contiguous or index in self.above:
            return False
        if index != self.contiguous:
            self.above.add(index)
            return True
        self.contiguous += 1
        while self.contiguous in self.above:
            self.above.remove(self.contiguous)
            self.contiguous += 1
        return True
