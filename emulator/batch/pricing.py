"""Batch pricing: each successful request at live rates, less the window's discount (Decimal)."""

from __future__ import annotations

from decimal import Decimal

from emulator.records import Model

_MTOK = Decimal(1_000_000)
_ONE = Decimal(1)


def live_cost(model: Model, input_tokens: int, output_tokens: int, images: int = 0) -> Decimal:
    cost = (
        input_tokens * model.input_price_per_mtok + output_tokens * model.output_price_per_mtok
    ) / _MTOK
    if images and model.price_per_image is not None:
        cost += images * model.price_per_image
    return cost


def discounted(model: Model, window: str, live: Decimal) -> Decimal:
    return live * (_ONE - model.batch_discount[window])
