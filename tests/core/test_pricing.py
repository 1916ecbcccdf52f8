"""Pricing steps: model-name matching, custom tables and the cost stored on each step."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentsession import (
    ModelPrice,
    PriceTable,
    SessionSummary,
    SessionTracker,
    Step,
    get_price_table,
    set_price_table,
)

StepsOf = Callable[[str], list[Step]]

TABLE = PriceTable(
    {
        "gpt-4o": ModelPrice(2.0, 8.0),
        "gpt-4o-mini": ModelPrice(0.5, 1.0),
        "claude-sonnet-4": ModelPrice(3.0, 15.0),
    }
)


def test_model_price_cost_is_per_million_tokens() -> None:
    """ModelPrice.cost charges input and output tokens at their per-million rates."""
    assert ModelPrice(2.0, 8.0).cost(1_000_000, 0) == pytest.approx(2.0)
    assert ModelPrice(2.0, 8.0).cost(500, 250) == pytest.approx((500 * 2.0 + 250 * 8.0) / 1e6)


def test_exact_name_matches() -> None:
    """A known model name returns its own price."""
    assert TABLE.price_of("gpt-4o") == ModelPrice(2.0, 8.0)


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-2024-08-06", "openai/gpt-4o", "GPT-4o", "azure/openai/gpt-4o-2024-05-13", "gpt-4o@eu"],
)
def test_dated_snapshots_and_provider_prefixes_match(model: str) -> None:
    """Dated snapshots, provider prefixes and other casing use the base model's price."""
    assert TABLE.price_of(model) == TABLE.price_of("gpt-4o")


def test_longest_prefix_wins() -> None:
    """gpt-4o-mini snapshots price as gpt-4o-mini, not as the shorter gpt-4o."""
    assert TABLE.price_of("gpt-4o-mini") == ModelPrice(0.5, 1.0)
    assert TABLE.price_of("gpt-4o-mini-2024-07-18") == ModelPrice(0.5, 1.0)


@pytest.mark.parametrize("model", ["llama-3-70b", "gpt-4omega", "gpt", "claude"])
def test_unknown_models_have_no_price(model: str) -> None:
    """A model matching no known name (or only part of a word) has no price and no cost."""
    assert TABLE.price_of(model) is None
    assert TABLE.cost(model, 100, 100) is None


def test_cost_needs_a_model_and_tokens() -> None:
    """cost() is None without a model or without any token counts; missing side counts as 0."""
    assert TABLE.cost(None, 10, 10) is None
    assert TABLE.cost("gpt-4o", None, None) is None
    assert TABLE.cost("gpt-4o", 1000, None) == pytest.approx(1000 * 2.0 / 1e6)


def test_with_prices_adds_and_overrides_without_changing_the_original() -> None:
    """with_prices returns a new table with extra or replaced prices; the original is unchanged."""
    extended = TABLE.with_prices({"my-model": ModelPrice(1.0, 1.0), "gpt-4o": ModelPrice(9.0, 9.0)})
    assert extended.price_of("my-model-v2") == ModelPrice(1.0, 1.0)
    assert extended.price_of("gpt-4o") == ModelPrice(9.0, 9.0)
    assert extended.price_of("claude-sonnet-4-20250514") == ModelPrice(3.0, 15.0)
    assert TABLE.price_of("gpt-4o") == ModelPrice(2.0, 8.0)
    assert TABLE.price_of("my-model") is None


def test_default_table_is_dated_and_prices_its_models_by_prefix() -> None:
    """The shipped table says when its prices were read, and dated snapshots of its models match."""
    table = PriceTable.default()
    assert table.as_of
    assert get_price_table().as_of == table.as_of
    for model in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4"):
        price = table.price_of(model)
        assert price is not None
        assert table.price_of(f"{model}-2099-01-01") == price


def test_steps_are_priced_with_the_table_in_force(steps_of: StepsOf) -> None:
    """set_price_table changes the cost_usd recorded for steps with token counts."""
    set_price_table(TABLE)
    tracker = SessionTracker("price-steps-conv")
    tracker.begin_step(model="gpt-4o-2024-08-06").end(input_tokens=1000, output_tokens=500)
    tracker.begin_step(model="unknown-model").end(input_tokens=1000, output_tokens=500)
    priced, unpriced = steps_of("price-steps-conv")
    assert priced.cost_usd == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    assert unpriced.cost_usd is None


def test_explicit_cost_wins_over_the_table(steps_of: StepsOf) -> None:
    """A cost_usd passed to end() is stored as given, even for a model in the table."""
    set_price_table(TABLE)
    tracker = SessionTracker("price-explicit-conv")
    tracker.begin_step(model="gpt-4o").end(input_tokens=1000, output_tokens=500, cost_usd=0.1234)
    [step] = steps_of("price-explicit-conv")
    assert step.cost_usd == 0.1234


def test_session_cost_adds_up_step_costs(
    steps_of: StepsOf, summary_of: Callable[[str], SessionSummary]
) -> None:
    """The session summary's cost is the sum of its steps' costs, per model too."""
    set_price_table(TABLE)
    tracker = SessionTracker("price-summary-conv")
    tracker.begin_step(model="gpt-4o").end(input_tokens=100, output_tokens=10)
    tracker.begin_step(model="gpt-4o-mini").end(input_tokens=200, output_tokens=20)
    tracker.end()
    steps = steps_of("price-summary-conv")
    summary = summary_of("price-summary-conv")
    assert summary.cost_usd == pytest.approx(sum(s.cost_usd or 0 for s in steps))
    assert summary.usage["gpt-4o-mini"].cost_usd == pytest.approx(steps[1].cost_usd)
