"""Webhook events: the types, how each one is made, and how an attempt is signed.

An event's body is made once, when the event is; every attempt of every delivery of it sends
and signs those same bytes. The signature is ScaiGrid's: `sha256=` + the hex HMAC-SHA256 of the
raw body under the webhook's secret; the timestamp travels in its own header, unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

from emulator import __version__, wire
from emulator.batch.service import Batches
from emulator.clock import Clock, iso_or_none
from emulator.ids import Ids
from emulator.records import BatchRecord, DeliveryRecord, EventRecord, WebhookRecord
from emulator.status import BatchStatus
from emulator.store import Store
from emulator.tenancy import Tenancy
from emulator.webhooks.policy import PENDING

#: the status a batch reaches -> the event it emits
BATCH_EVENTS: dict[str, str] = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.CANCELLED: "batch.cancelled",
}
AUTO_DISABLED = "webhook.auto_disabled"
TEST = "webhook.test"

#: every event type a webhook may subscribe to -> when the emulator emits it
EVENT_TYPES: dict[str, str] = {
    "batch.completed": "a batch completed (a window expiry included)",
    "batch.failed": "a batch failed (its input did not parse)",
    "batch.cancelled": "a batch was cancelled (by its owner or by the service)",
    AUTO_DISABLED: "another webhook of the tenant was disabled after 50 failures in a row",
    # ScaiGrid's other documented types: accepted in a subscription, never emitted here
    "request.completed": "never",
    "request.failed": "never",
    "budget.soft_limit_reached": "never",
    "budget.hard_limit_reached": "never",
}
DEFAULT_EVENTS = tuple(BATCH_EVENTS.values())

#: the `source` of each event type's envelope
_SOURCES = {**dict.fromkeys(BATCH_EVENTS.values(), "batch_service")}
_WEBHOOK_SOURCE = "webhook_service"
USER_AGENT = f"ScaiGrid-Webhook/1.0 (scaigrid-emulator {__version__})"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(e: EventRecord, d: DeliveryRecord, secret: str, now: float) -> dict[str, str]:
    """The headers of one attempt; `secret` signs it (a scenario may give a wrong one)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-ScaiGrid-Signature": signature(secret, e.body),
        "X-ScaiGrid-Timestamp": str(int(now)),
        "X-ScaiGrid-Event-Id": e.id,
        "X-ScaiGrid-Event-Type": e.type,
        "X-ScaiGrid-Delivery-Id": d.id,
    }


class Events:
    """Makes events and deliveries, numbered from the store's highest so ids never repeat."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        ids: Ids,
        batches: Batches,
        tenancy: Tenancy,
        base_url: str,
    ) -> None:
        self.store, self.clock, self.ids = store, clock, ids
        self.batches, self.tenancy, self.base_url = batches, tenancy, base_url
        self._events = itertools.count(1)
        self._deliveries = itertools.count(1)

    async def start(self) -> None:
        _, events, deliveries = await self.store.webhook_max_seqs()
        self._events = itertools.count(events + 1)
        self._deliveries = itertools.count(deliveries + 1)

    def reset_sequence(self) -> None:
        self._events = itertools.count(1)
        self._deliveries = itertools.count(1)

    async def _event(
        self, event_type: str, source: str, tenant: str, partner: str, payload: dict[str, Any]
    ) -> EventRecord:
        event_id = await self.ids.mint("evt_", "event", tenant)
        seq, now = next(self._events), self.clock.now()
        body = wire.event(event_type, event_id, source, tenant, partner, payload, now)
        return EventRecord(seq, event_id, tenant, event_type, body, now)

    async def for_batch(self, b: BatchRecord) -> EventRecord:
        """The event of a batch's final status. Its results link is minted now (valid an hour
        of emulator time, as every results link); a later status call gives a fresh one."""
        base = b.extra.get("base_url") or self.base_url
        payload = wire.batch_event_payload(b, *self.batches.results_link(b, base))
        event_type = BATCH_EVENTS[b.status]
        partner = self.tenancy.partner_of(b.tenant_id)
        event = await self._event(event_type, _SOURCES[event_type], b.tenant_id, partner, payload)
        event.batch_seq = b.seq
        return event

    async def test_event(self, w: WebhookRecord) -> EventRecord:
        payload = {"webhook_id": w.id, "message": "A test event from the ScaiGrid emulator."}
        return await self._event(TEST, _WEBHOOK_SOURCE, w.tenant_id, w.partner_id, payload)

    async def auto_disabled(self, w: WebhookRecord) -> EventRecord:
        payload = {
            "webhook_id": w.id,
            "url": w.url,
            "consecutive_failures": w.consecutive_failures,
            "disabled_at": iso_or_none(w.disabled_at),
        }
        return await self._event(AUTO_DISABLED, _WEBHOOK_SOURCE, w.tenant_id, w.partner_id, payload)

    async def delivery(
        self, e: EventRecord, w: WebhookRecord, due: float, chaos: dict[str, Any] | None = None
    ) -> DeliveryRecord:
        delivery_id = await self.ids.mint("del_", "delivery", w.tenant_id)
        return DeliveryRecord(
            seq=next(self._deliveries),
            id=delivery_id,
            webhook_seq=w.seq,
            event_seq=e.seq,
            created_at=e.created_at,
            status=PENDING,
            next_attempt_at=due,
            chaos=chaos or {},
        )
