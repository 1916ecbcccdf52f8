"""Text helpers for terminal views: fixed-width tables, fitting, ANSI colour, numbers and times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = [
    "ELLIPSIS",
    "GAP",
    "STATUS_STYLE",
    "WIDTH",
    "Column",
    "cost",
    "count",
    "duration",
    "fit",
    "one_line",
    "paint",
    "parse_utc",
    "plural",
    "printable",
    "table",
    "utc",
    "when",
]

WIDTH = 100
"""Columns every line of a terminal view fits in."""
GAP = "  "
ELLIPSIS = "…"
_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "timed_out": "red",
    "in_progress": "yellow",
    "cancelled": "dim",
}
"""The colour of each session or step status."""


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False
    shrink_to: int | None = None
    """Narrowest this column may be cut to when the table is too wide; None never cuts it."""
    gap: int = len(GAP)
    """Spaces before this column (ignored for the first)."""
    status: bool = False
    """Cells are session or step statuses, coloured by what they say."""


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    color: bool,
    *,
    width: int = WIDTH,
    header: bool = True,
) -> list[str]:
    """Aligned rows no wider than ``width``: shrinkable columns are cut, in order, with "…"."""
    widths = [max(len(col.header), *(len(row[i]) for row in rows)) for i, col in enumerate(columns)]
    excess = sum(widths) + sum(col.gap for col in columns[1:]) - width
    for i, col in enumerate(columns):
        if excess <= 0:
            break
        if col.shrink_to is not None and widths[i] > col.shrink_to:
            cut = min(excess, widths[i] - col.shrink_to)
            widths[i] -= cut
            excess -= cut

    def line(cells: Sequence[str], is_header: bool = False) -> str:
        out = []
        for i, (cell, col) in enumerate(zip(cells, columns, strict=True)):
            text = fit(cell, widths[i])
            text = text.rjust(widths[i]) if col.right else text.ljust(widths[i])
            if i == len(columns) - 1:
                text = text.rstrip()  # before painting: no trailing blanks hidden in a colour
            style = "bold" if is_header else STATUS_STYLE.get(cell) if col.status else None
            out.append((" " * col.gap if i else "") + paint(text, style, color))
        return "".join(out)

    lines = [line([c.header for c in columns], is_header=True)] if header else []
    return lines + [line(row) for row in rows]


def paint(text: str, style: str | None, color: bool) -> str:
    if not color or style is None or not text:
        return text
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


def printable(text: str) -> str:
    """Control characters (newlines, escape codes) from recorded data would break the layout."""
    return "".join(c if c.isprintable() else " " for c in text)


def one_line(text: str) -> str:
    return " ".join(printable(text).split())


def fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def utc(moment: datetime) -> datetime:
    """Models hold aware UTC times; a naive one is taken to be UTC rather than local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 date or time (``2024-05-01``, ``2024-05-01T12:00:00Z``) as an aware UTC
    datetime; one without a zone is taken to be UTC. ValueError if it is not one."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):  # fromisoformat() accepts a "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    try:
        return utc(moment)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC datetime
        raise ValueError(f"{text!r} is out of range once moved to UTC") from None


def when(moment: datetime, *, precise: bool = True) -> str:
    moment = utc(moment)
    if precise:
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%d %H:%M")


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def count(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return str(n)
    if n < 999_950:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def cost(usd: float | None) -> str:
    if usd is None:
        return "-"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"
