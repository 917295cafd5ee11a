"""Completion windows: each window's length and the batch discount a model gets by default."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    seconds: int
    #: the fraction off live prices for a model that does not set its own
    default_discount: Decimal


WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("24h", 24 * 3600, Decimal("0.50")),
        Window("4h", 4 * 3600, Decimal("0.30")),
        Window("1h", 3600, Decimal("0.15")),
    )
}
DEFAULT_WINDOW = "24h"
