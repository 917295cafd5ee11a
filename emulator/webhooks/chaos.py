"""What a scenario's `webhooks:` section does to deliveries, drawn from the seed.

Per event and webhook (when the deliveries are made): a duplicate (two deliveries of one event)
and a delay of the first attempt. Per attempt: failing before anything is sent (the first N) and
a wrong signature. Per burst (the deliveries of one webhook due together): a shuffled order.
What was decided for a delivery is stored with it, so a restart keeps it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from emulator import seeded
from emulator.records import DeliveryRecord
from emulator.scenario.model import WebhookChaos

T = TypeVar("T")


def plan(
    chaos: WebhookChaos | None, seed: int, event_id: str, webhook_id: str
) -> list[tuple[float, dict[str, Any]]]:
    """(delay of the first attempt, what to store with the delivery) for each delivery of the
    event to the webhook: one, or two when duplicated."""
    if chaos is None:
        return [(0.0, {})]

    def draw(*what: object) -> float:
        return seeded.unit(seed, "webhook", *what, event_id, webhook_id)

    stored: dict[str, Any] = {"seed": seed}
    if chaos.fail_attempts and draw("fail_first") < chaos.fail_first:
        stored["fail_attempts"] = chaos.fail_attempts
    if chaos.wrong_signature:
        stored["wrong_signature"] = chaos.wrong_signature
    if chaos.reorder:
        stored["reorder"] = chaos.reorder
    copies = 2 if draw("duplicate") < chaos.duplicate else 1
    out = []
    for copy in range(copies):
        delay = 0.0
        if chaos.delay_by is not None and draw("delay", copy) < chaos.delay:
            delay = chaos.delay_by.sample(draw("delay-by", copy))
        out.append((delay, stored))
    return out


def fails_before_sending(d: DeliveryRecord, attempt: int) -> bool:
    return attempt <= int(d.chaos.get("fail_attempts", 0))


def wrong_signature(d: DeliveryRecord, attempt: int) -> bool:
    chance = float(d.chaos.get("wrong_signature", 0.0))
    return chance > 0 and seeded.unit(d.chaos["seed"], "wrong-signature", d.id, attempt) < chance


def reorder(burst: list[tuple[DeliveryRecord, T]]) -> list[tuple[DeliveryRecord, T]]:
    """The burst in the order it goes out: as due, or shuffled when a scenario says so."""
    if len(burst) < 2:
        return burst
    first = burst[0][0]
    chance = float(first.chaos.get("reorder", 0.0))
    key = [d.id for d, _ in burst]
    if chance <= 0 or seeded.unit(first.chaos["seed"], "reorder", *key) >= chance:
        return burst
    shuffled = list(burst)
    seeded.rng(first.chaos["seed"], "reorder-order", *key).shuffle(shuffled)
    return shuffled
