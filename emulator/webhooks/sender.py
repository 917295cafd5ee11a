"""The sender: delivers webhook events in the background, on the emulator clock.

Deliveries are rows in the store; the sender wakes on a clock change, a new event, or when the
next retry is due in real time, and runs each webhook's due deliveries in order, one webhook per
task. Outbound calls share one `httpx.AsyncClient` and a bounded number of slots, each attempt
is cut at the ack deadline, and nothing here holds the store between statements: a receiver that
hangs delays its own webhook's deliveries, never batch processing or the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.clock import Clock
from emulator.metrics import Metrics
from emulator.records import DeliveryRecord, EventRecord, WebhookRecord
from emulator.scenario.registry import Scenarios
from emulator.status import is_final
from emulator.store import Store
from emulator.webhooks import chaos, policy
from emulator.webhooks.events import Events, headers
from emulator.webhooks.outbox import Outbox

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("emulator.webhooks")

#: deliveries of one webhook fetched at a time (a burst)
BURST = 100
#: the background loop never spins faster than this, even if something keeps failing
_MIN_WAIT = 0.05


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


#: a delivery's status after an attempt -> the outcome the metrics count (pending: retried)
_OUTCOMES = {policy.SUCCESS: "success", policy.PENDING: "retry", policy.FAILED: "failed"}


class Sender:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        events: Events,
        outbox: Outbox,
        scenarios: Scenarios,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float = policy.ACK_TIMEOUT,
        concurrency: int = 16,
        metrics: Metrics | None = None,
    ) -> None:
        self.store, self.clock, self.events = store, clock, events
        self.metrics = metrics or Metrics()
        self.outbox, self.scenarios = outbox, scenarios
        self._http, self._own_http = http, http is None
        self.timeout, self.concurrency = timeout, concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._drains: dict[int, asyncio.Task[None]] = {}  # webhook seq -> its running drain
        self._again: set[int] = set()  # webhooks that got due work while their drain ran
        self._task: asyncio.Task[None] | None = None

    # --- the client ----------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:  # made on first use: most runs never deliver anything
            import httpx  # imported here too: ~25 ms a server that never delivers need not pay

            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=self.concurrency),
                follow_redirects=False,
                trust_env=False,  # a proxy from the environment must not see loopback calls
            )
        return self._http

    def use(self, http: httpx.AsyncClient) -> None:
        """Deliver through `http` (an in-process app's transport, in tests); the caller owns it."""
        self._http, self._own_http = http, False

    # --- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        self._wake = asyncio.Event()
        # final batches whose event a crash kept from being made
        for seq in await self.store.final_batches_without_event():
            self.outbox.add(seq)
        self.clock.subscribe(self.kick)
        self.outbox.subscribe(self.kick)
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._drains.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._drains.clear()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def kick(self) -> None:
        self._wake.set()

    def forget(self) -> None:
        """After a reset: no event is owed for batches that are gone."""
        self.outbox.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.run_due(wait=False)
            except Exception:
                log.exception("webhook delivery failed; retrying on the next wake-up")
                due = None
            timeout = None if due is None else self.clock.real_seconds_until(due)
            if timeout is not None:
                timeout = max(timeout, _MIN_WAIT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def run_due(self, *, wait: bool = True) -> float | None:
        """Make the events owed, start delivering what is due; with `wait`, return once every
        delivery due now has been attempted (the control plane's clock moves use this). The
        instant the next delivery is due, leaving out webhooks being delivered to right now."""
        await self._make_events()
        now = self.clock.now()
        for webhook_seq in await self.store.due_webhooks(now):
            if webhook_seq in self._drains:
                self._again.add(webhook_seq)
            else:
                self._drains[webhook_seq] = asyncio.create_task(self._drain(webhook_seq))
        while wait and self._drains:
            await asyncio.wait(list(self._drains.values()))
        return await self.store.next_delivery_due(exclude=tuple(self._drains))

    # --- events --------------------------------------------------------------------------------

    async def _make_events(self) -> None:
        """The event of each batch the outbox names, with a delivery to each webhook of its
        tenant that wants it, in one transaction per event."""
        for seq in self.outbox.pending():
            batch = await self.store.get_batch_by_seq(seq)
            if batch is not None and is_final(batch.status):
                event = await self.events.for_batch(batch)
                await self.store.insert_event(event, await self._deliveries(event))
            self.outbox.done(seq)

    async def _deliveries(
        self, event: EventRecord, skip: int | None = None
    ) -> list[DeliveryRecord]:
        scenario = self.scenarios.for_tenant(event.tenant_id)
        seed = self.scenarios.seed if scenario.seed is None else scenario.seed
        out = []
        for w in await self.store.all_webhooks(event.tenant_id):
            if w.status != "active" or event.type not in w.events or w.seq == skip:
                continue
            for delay, decided in chaos.plan(scenario.webhooks, seed, event.id, w.id):
                out.append(await self.events.delivery(event, w, event.created_at + delay, decided))
        return out

    # --- one webhook ---------------------------------------------------------------------------

    async def _drain(self, webhook_seq: int) -> None:
        """Attempt the webhook's due deliveries, in order, until none is due."""
        try:
            while True:
                w = await self.store.get_webhook_by_seq(webhook_seq)
                burst = []
                if w is not None and w.status == "active":  # an inactive one receives nothing
                    burst = await self.store.due_deliveries(webhook_seq, self.clock.now(), BURST)
                if not burst:
                    if webhook_seq in self._again:  # work arrived while we looked
                        self._again.discard(webhook_seq)
                        continue
                    return
                for d, e in chaos.reorder(burst):
                    # read again before each attempt: a delete, a disable or a new secret or
                    # retry count since the burst was fetched takes effect at once
                    w = await self.store.get_webhook_by_seq(webhook_seq)
                    if w is None or w.status != "active":
                        break
                    await self._deliver(w, d, e)
        except Exception:
            log.exception("delivering to webhook #%s failed", webhook_seq)
        finally:
            self._drains.pop(webhook_seq, None)
            self._again.discard(webhook_seq)

    async def _deliver(self, w: WebhookRecord, d: DeliveryRecord, e: EventRecord) -> None:
        now = self.clock.now()
        d.attempts += 1
        outcome = await self.attempt(w, d, e, now)
        self._settle(d, outcome, now)
        policy.after_attempt(d, outcome.ok, now, w.max_retries)
        self.metrics.deliveries[_OUTCOMES[d.status]] += 1
        w.consecutive_failures = await self.store.record_attempt(d, outcome.ok)
        if w.consecutive_failures >= policy.AUTO_DISABLE_AFTER and w.status == "active":
            await self._disable(w, now)

    @staticmethod
    def _settle(d: DeliveryRecord, outcome: Outcome, now: float) -> None:
        d.last_attempt_at = now
        d.status_code, d.error_message = outcome.status_code, outcome.error
        d.duration_ms = outcome.duration_ms

    async def send_test(self, w: WebhookRecord) -> DeliveryRecord:
        """A synthetic event, sent at once and once: its outcome is the answer. It is not
        retried and does not count towards auto-disable (it is a diagnosis, not traffic)."""
        event = await self.events.test_event(w)
        now = self.clock.now()
        d = await self.events.delivery(event, w, now)
        d.attempts = 1
        outcome = await self.attempt(w, d, event, now)
        self._settle(d, outcome, now)
        d.status = policy.SUCCESS if outcome.ok else policy.FAILED
        self.metrics.deliveries[_OUTCOMES[d.status]] += 1
        d.next_attempt_at = None
        await self.store.insert_event(event, [d])
        d.webhook_id, d.event_id, d.event_type = w.id, event.id, event.type
        return d

    async def _disable(self, w: WebhookRecord, now: float) -> None:
        """Fifty failures in a row: the webhook goes inactive, and the tenant's other webhooks
        that subscribe to it hear so."""
        w.status, w.disabled_at, w.updated_at = "inactive", now, now
        event = await self.events.auto_disabled(w)
        if await self.store.disable_webhook(w, event, await self._deliveries(event, w.seq)):
            log.warning("webhook %s disabled: %d failures in a row", w.id, w.consecutive_failures)
            self.kick()

    async def attempt(
        self, w: WebhookRecord, d: DeliveryRecord, e: EventRecord, now: float
    ) -> Outcome:
        """One attempt of `d` (its number already counted): POST the event, signed. A
        scenario's chaos spares the last attempt, so that chaos alone never loses an event."""
        last = d.attempts > w.max_retries
        if not last and chaos.fails_before_sending(d, d.attempts):
            self.metrics.faults[("webhook", "fail_first")] += 1
            return Outcome(None, f"failed before sending (scenario): attempt {d.attempts}", 0)
        secret = w.secret
        if not last and chaos.wrong_signature(d, d.attempts):
            self.metrics.faults[("webhook", "wrong_signature")] += 1
            secret = "not-" + secret  # anything but the secret
        sent = headers(e, d, secret, now)
        import httpx

        async with self._slots:
            started = time.perf_counter()
            try:
                resp = await asyncio.wait_for(
                    self.http.post(w.url, content=e.body, headers=sent), self.timeout
                )
            except TimeoutError:
                return Outcome(408, f"no answer within {self.timeout:g} s", _ms(started))
            except httpx.HTTPError as exc:
                return Outcome(None, f"{type(exc).__name__}: {exc}".rstrip(": "), _ms(started))
        outcome = Outcome(resp.status_code, None, _ms(started))
        if not outcome.ok:
            return Outcome(resp.status_code, f"receiver answered {resp.status_code}", _ms(started))
        return outcome


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
