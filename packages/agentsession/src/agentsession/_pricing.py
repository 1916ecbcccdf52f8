"""What a step cost: a per-model price table that users can extend or replace."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PRICES_AS_OF", "ModelPrice", "PriceTable", "get_price_table", "set_price_table"]


@dataclass(frozen=True)
class ModelPrice:
    """List prices in US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


DEFAULT_PRICES_AS_OF = "2025-08-15"
"""Date the default list prices were read from the providers' pricing pages."""

_DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-5": ModelPrice(1.25, 10.0),
    "gpt-5-mini": ModelPrice(0.25, 2.0),
    "gpt-5-nano": ModelPrice(0.05, 0.40),
    "gpt-4.1": ModelPrice(2.0, 8.0),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4o": ModelPrice(2.50, 10.0),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "o3": ModelPrice(2.0, 8.0),
    "o3-mini": ModelPrice(1.10, 4.40),
    "o4-mini": ModelPrice(1.10, 4.40),
    "claude-opus-4": ModelPrice(15.0, 75.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-3-7-sonnet": ModelPrice(3.0, 15.0),
    "claude-3-5-haiku": ModelPrice(0.80, 4.0),
    "gemini-2.5-pro": ModelPrice(1.25, 10.0),
    "gemini-2.5-flash": ModelPrice(0.30, 2.50),
}


class PriceTable:
    """Maps model names to prices; a name matches exactly, else by its longest known prefix.

    Prefix matching makes dated snapshots such as ``gpt-4o-2024-08-06`` use ``gpt-4o``'s price,
    and a provider prefix such as ``openai/gpt-4o`` is ignored.
    """

    def __init__(self, prices: Mapping[str, ModelPrice], *, as_of: str | None = None) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self.as_of = as_of

    @classmethod
    def default(cls) -> PriceTable:
        """The small dated table shipped with agentsession."""
        return cls(_DEFAULT_PRICES, as_of=DEFAULT_PRICES_AS_OF)

    def with_prices(self, prices: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table with ``prices`` added or overriding this one's."""
        return PriceTable({**self._prices, **prices}, as_of=self.as_of)

    def price_of(self, model: str) -> ModelPrice | None:
        name = model.lower().rsplit("/", 1)[-1]
        price = self._prices.get(name)
        if price is not None:
            return price
        for known in self._by_length:
            if name.startswith(known) and name[len(known) : len(known) + 1] in ("-", "@", ":", ""):
                return self._prices[known]
        return None

    def cost(
        self, model: str | None, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        """Dollars for one call, or None when the model is unknown or no tokens were reported."""
        if model is None or (input_tokens is None and output_tokens is None):
            return None
        price = self.price_of(model)
        if price is None:
            return None
        return price.cost(input_tokens or 0, output_tokens or 0)


_lock = threading.Lock()
_table = PriceTable.default()


def get_price_table() -> PriceTable:
    """The table steps are priced with."""
    return _table


def set_price_table(table: PriceTable) -> None:
    """Replace the table for the whole process, e.g. ``get_price_table().with_prices({...})``."""
    global _table
    with _lock:
        _table = table
