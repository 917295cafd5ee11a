"""The built-in receiver: named sinks in memory that record every post, for tests that have no
server of their own. A post may ask for a chosen answer (`status`) for the first `count` posts
that ask the same, so retries can be provoked; a reset empties every sink."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from emulator import wire
from emulator.clock import Clock
from emulator.errors import ValidationError
from emulator.schema import Param, integer

#: what a post may ask of its answer: a status, for the first `count` posts that ask the same
# (not 1xx: an informational status is not an answer, and a client waits on for the real one)
STATUS = Param("status", integer(200, 599), "the status to answer with")
COUNT = Param("count", integer(0, 1_000_000), "answer `status` to this many posts (default all)")
QUERY = (STATUS, COUNT)

#: posts kept per sink (the oldest are dropped first)
CAPACITY = 10_000


def _int(param: Param, raw: str | None) -> int | None:
    if raw is None:
        return None
    name, low, high = param.name, param.schema["minimum"], param.schema["maximum"]
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError(
            f"Invalid {name}.",
            details=[{"field": name, "message": f"must be an integer from {low} to {high}"}],
        )
    return int(raw)


class Sinks:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._items: defaultdict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=CAPACITY)
        )
        self._answered: defaultdict[tuple[str, int, int], int] = defaultdict(int)

    def receive(
        self, name: str, headers: dict[str, str], body: bytes, status: str | None, count: str | None
    ) -> int:
        """Record a post; the status to answer it with."""
        chosen = _int(STATUS, status)
        times = _int(COUNT, count)
        answer = 200
        if chosen is not None:
            key = (name, chosen, -1 if times is None else times)
            if times is None or self._answered[key] < times:
                self._answered[key] += 1
                answer = chosen
        text = body.decode("utf-8", errors="replace")
        self._items[name].append(wire.sink_item(self.clock.now(), headers, text, answer))
        return answer

    def items(self, name: str) -> list[dict[str, Any]]:
        return list(self._items.get(name, ()))

    def summary(self) -> dict[str, int]:
        return {name: len(items) for name, items in self._items.items()}

    def reset(self) -> None:
        self._items.clear()
        self._answered.clear()
