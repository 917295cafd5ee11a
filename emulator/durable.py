"""What survives a restart besides the store's own rows: the clock and the request journal.

Both change on the live path (the clock with wall time, the journal with every request), where a
database write per request would cost more than the request; so they are saved together, in one
transaction each, on a timer (every `interval` real seconds), whenever the control plane moves
the clock, and at shutdown. A `kill -9` can lose what the last interval recorded: up to
`interval` seconds of journal entries, and in `scaled` mode that much clock progress. It cannot
make the clock go back before anything stored: at start the clock resumes no earlier than the
latest instant a batch, file, webhook, event, delivery or journal entry was written at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from emulator.clock import Clock, iso
from emulator.journal import Journal
from emulator.store import Store, StoreClosed

log = logging.getLogger("emulator")

CLOCK_KEY = "clock"


class Durable:
    """Restores the clock and the journal at start, and saves them until stopped."""

    def __init__(self, store: Store, clock: Clock, journal: Journal, interval: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.journal = journal
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def restore(self) -> None:
        """Before anything runs: the saved journal, and the clock where it stopped."""
        self.journal.restore(await self.store.load_journal(self.journal.capacity))
        snapshot = await self.store.get_state(CLOCK_KEY)
        floor = await self.store.latest_instant()
        if snapshot is not None:
            configured = (self.clock.mode, self.clock.scale)
            self.clock.restore(snapshot, floor)
            if (self.clock.mode, self.clock.scale) != configured:
                log.warning(
                    "the database's clock (%s, scale %s, now %s) continues; it overrides the "
                    "configured %s clock (give another --db to start afresh)",
                    self.clock.mode, self.clock.scale, iso(self.clock.now()), configured[0],
                )  # fmt: skip
        elif floor is not None and floor > self.clock.now():
            # a database from before the clock was saved: never start before what it holds
            self.clock.restore({**self.clock.snapshot(), "now": floor}, floor)

    def start(self) -> None:
        self._stopping = asyncio.Event()  # made in the loop that runs it
        self._task = asyncio.create_task(self._run(), name="emulator-durable")

    async def save(self) -> None:
        """Write the journal entries recorded since the last save, and the clock."""
        await self.store.append_journal(self.journal.take_unsaved(), self.journal.capacity)
        await self.store.put_state(CLOCK_KEY, self.clock.snapshot())

    async def stop(self) -> None:
        """Stop the timer and save one last time (unless the store is closed already)."""
        if self._task is not None:
            task, self._task = self._task, None
            self._stopping.set()
            await task
        with contextlib.suppress(StoreClosed):
            await self.save()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # a timer that stop() ends at once (waiting on an event, not sleeping)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
                return
            try:
                await self.save()
            except Exception:  # a failed save is retried at the next tick
                log.exception("saving the clock and journal failed")
