"""The one emulator clock. Every timestamp, window, latency, URL expiry and retry reads it.

Modes: `real` (wall time, plus whatever was advanced), `scaled` (N emulator seconds per real
second) and `frozen` (moves only when advanced). Time is a float of Unix seconds internally; the
wire sees ISO-8601 with milliseconds and `Z` (native) or integer seconds (OpenAI view).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from emulator.errors import ValidationError

MODES = ("real", "scaled", "frozen")
#: the last instant a timestamp can be written for; the clock is never advanced beyond it
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def parse_instant(value: str) -> datetime:
    """An ISO-8601 instant; a naive one is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 instant: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as ScaiGrid's timestamps are written."""
    # isoformat writes four digits of year (strftime's "%Y" writes the year 51 as "51"), and
    # is the faster of the two; milliseconds are truncated, as they always were
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


class Clock:
    """A settable, advanceable clock. `now()` is cheap: it is on every request's path."""

    def __init__(
        self,
        mode: str = "real",
        scale: float = 1.0,
        start: datetime | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall
        self._listeners: list[Callable[[], None]] = []
        self._date_second, self._date = -1, b""
        self._set(mode, scale, start.timestamp() if start else wall())

    # --- reading -------------------------------------------------------------------------------

    def http_date(self) -> bytes:
        """`now()` as an HTTP `Date` header value (a response's `Date` follows the emulator
        clock, so it agrees with `X-ScaiGrid-RateLimit-Reset` and every timestamp); formatted
        once per second of emulator time, as it is on every response."""
        second = int(self.now())
        if second != self._date_second:
            self._date_second = second
            self._date = formatdate(second, usegmt=True).encode()
        return self._date

    @property
    def frozen(self) -> bool:
        """Time moves only when advanced."""
        return self.mode == "frozen"

    def now(self) -> float:
        if self.mode == "frozen":
            return self._anchor_emu
        now = self._anchor_emu + (self._wall() - self._anchor_wall) * self.scale
        # a running clock stops at the last instant a timestamp can be written for: past it,
        # every timestamp and the `Date` header of every answer would fail to format
        return now if now < LAST_INSTANT else LAST_INSTANT

    def real_seconds_until(self, instant: float) -> float | None:
        """How long real time must pass for the clock to reach `instant`; None if it never will."""
        delta = instant - self.now()
        if delta <= 0:
            return 0.0
        if self.mode == "frozen":
            return None
        return delta / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"now": iso(self.now()), "mode": self.mode, "scale": self.scale}

    # --- changing ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move forward by `seconds` of emulator time (never backwards)."""
        if not seconds >= 0:  # also refuses NaN
            raise ValidationError(
                "The clock only moves forward.",
                details=[{"field": "seconds", "message": "must be a non-negative number"}],
            )
        if self.now() + seconds > LAST_INSTANT:
            raise ValidationError(
                "The clock cannot move past 9999-12-31T23:59:59Z.",
                details=[{"field": "seconds", "message": "moves the clock past year 9999"}],
            )
        self._anchor_emu += seconds
        self._notify()

    def configure(
        self, mode: str | None = None, scale: float | None = None, start: datetime | None = None
    ) -> None:
        """Change mode/scale, and optionally jump to `start` (which may not be in the past).
        A scale alone means the scaled mode: it would have no effect in any other."""
        if mode is None and scale is not None:
            mode = "scaled"
        now = self.now()
        target = now
        if start is not None:
            target = start.timestamp()
            if not target <= LAST_INSTANT:  # 9999-12-31T23:59:59-01:00 is in year 10000
                raise ValidationError(
                    "The clock cannot move past 9999-12-31T23:59:59Z.",
                    details=[{"field": "start", "message": "is past year 9999"}],
                )
            if target < now:
                raise ValidationError(
                    "The clock only moves forward.",
                    details=[{"field": "start", "message": f"{iso(target)} is before {iso(now)}"}],
                )
        self._set(mode or self.mode, scale if scale is not None else self.scale, target)
        self._notify()

    def freeze_at(self, instant: float) -> None:
        """Frozen at `instant`, which may be in the past: only for when nothing is waiting on
        the clock (the control plane checks that first)."""
        if not instant <= LAST_INSTANT:
            raise ValidationError(
                "The clock cannot move past 9999-12-31T23:59:59Z.",
                details=[{"field": "clock", "message": "is past year 9999"}],
            )
        self._set("frozen", 1.0, instant)
        self._notify()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every advance or reconfiguration (the worker wakes on it)."""
        self._listeners.append(listener)

    # --- surviving a restart -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What a restart needs to continue this clock: mode, scale, the instant, and the wall
        time it was read at."""
        return {"mode": self.mode, "scale": self.scale, "now": self.now(), "wall": self._wall()}

    def restore(self, snapshot: dict[str, Any], floor: float | None = None) -> None:
        """Continue from a snapshot: `real` keeps its distance to wall time; `frozen` and
        `scaled` resume at the saved instant (they did not run while the emulator was down).
        Never before `floor` (the latest instant anything stored was written at)."""
        instant = float(snapshot["now"])
        if snapshot["mode"] == "real":
            instant += self._wall() - float(snapshot["wall"])
        self._set(str(snapshot["mode"]), float(snapshot["scale"]), max(instant, floor or instant))
        self._notify()

    # --- internals -----------------------------------------------------------------------------

    def _set(self, mode: str, scale: float, emu: float) -> None:
        if mode not in MODES:
            raise ValidationError(
                "Unknown clock mode.",
                details=[{"field": "mode", "message": f"must be one of {', '.join(MODES)}"}],
            )
        if not scale > 0:
            raise ValidationError(
                "Clock scale must be positive.",
                details=[{"field": "scale", "message": "must be a number > 0"}],
            )
        self.mode = mode
        self.scale = float(scale) if mode == "scaled" else 1.0
        self._anchor_emu = emu
        self._anchor_wall = self._wall()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()
