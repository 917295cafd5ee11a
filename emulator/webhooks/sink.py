"""The built-in receiver: named sinks in memory that record every post, for tests that have no
server of their own. A post may ask for a chosen answer (`status`) for the first `count` posts
that ask the same, so retries can be provoked; a reset empties every sink.

Posting needs no token (the webhook sender has none), so what sinks keep is bounded twice: the
last `CAPACITY` posts of each sink, and `BUDGET` bytes of bodies across all of them (the oldest
posts anywhere go first), however many sinks a caller names."""

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
#: bytes of bodies kept across all sinks (the oldest posts, in any sink, are dropped first)
BUDGET = 64 * 1024 * 1024


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
        # each sink's posts, oldest first, as (arrival number, body bytes, item)
        self._items: defaultdict[str, deque[tuple[int, int, dict[str, Any]]]] = defaultdict(deque)
        self._arrivals: deque[tuple[int, str]] = deque()  # (arrival number, sink), oldest first
        self._next = 0
        self._bytes = 0  # of the bodies kept
        self._kept = 0  # posts kept, in all sinks
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
        self._keep(name, len(body), wire.sink_item(self.clock.now(), headers, text, answer))
        return answer

    def _keep(self, name: str, size: int, item: dict[str, Any]) -> None:
        arrival, self._next = self._next, self._next + 1
        posts = self._items[name]
        posts.append((arrival, size, item))
        self._arrivals.append((arrival, name))
        self._bytes += size
        self._kept += 1
        if len(posts) > CAPACITY:
            self._drop(posts)  # its arrival is skipped when it comes up
            self._compact()
        while self._bytes > BUDGET and len(self._arrivals) > 1:  # the newest post always stays
            oldest, where = self._arrivals.popleft()
            kept = self._items.get(where)
            if kept and kept[0][0] == oldest:  # not dropped already by its sink's capacity
                self._drop(kept)
                if not kept:
                    del self._items[where]

    def _drop(self, posts: deque[tuple[int, int, dict[str, Any]]]) -> None:
        """Forget a sink's oldest post."""
        self._bytes -= posts.popleft()[1]
        self._kept -= 1

    def _compact(self) -> None:
        """Rebuild the arrival order from the posts kept once the order holds as many posts
        dropped by their sink's capacity as kept ones: a full sink posted to for ever must not
        grow it."""
        if len(self._arrivals) > 2 * self._kept + 1024:
            self._arrivals = deque(
                sorted(
                    (arrival, name)
                    for name, posts in self._items.items()
                    for arrival, _, _ in posts
                )
            )

    def items(self, name: str) -> list[dict[str, Any]]:
        return [item for _, _, item in self._items.get(name, ())]

    def summary(self) -> dict[str, int]:
        return {name: len(items) for name, items in self._items.items()}

    def reset(self) -> None:
        self._items.clear()
        self._arrivals.clear()
        self._bytes = self._kept = 0
        self._answered.clear()
