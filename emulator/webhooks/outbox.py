"""The batches whose event is still to be made.

The worker tells the outbox when a batch becomes final (one callback, after the final status is
committed); the sender makes the event from the stored batch. The outbox is only memory: a crash
between the two commits loses its entry, so the sender also looks in the store at start for final
batches without an event. Each batch's event is unique in the store, so seeing one twice is
harmless.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.records import BatchRecord


class Outbox:
    def __init__(self) -> None:
        self._seqs: dict[int, None] = {}  # insertion-ordered set of batch seqs
        self._listeners: list[Callable[[], None]] = []

    def batch_final(self, batch: BatchRecord) -> None:
        """The worker's callback: cheap and never raising, as it runs inside batch processing."""
        self.add(batch.seq)

    def add(self, seq: int) -> None:
        self._seqs[seq] = None
        for listener in self._listeners:
            listener()

    def pending(self) -> list[int]:
        return list(self._seqs)

    def done(self, seq: int) -> None:
        self._seqs.pop(seq, None)

    def clear(self) -> None:
        self._seqs.clear()

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
