"""A batch's processing plan: when it starts, when each request finishes, and what goes wrong.

The worker asks only this object; scenarios (`emulator.scenario.model`) build plans. The default
plan is the happy path: start at once, every request done at the start instant, no faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.errors import EmulatorError
from emulator.records import RequestRecord


@dataclass
class Plan:
    """The happy path. Subclasses (scenarios) override what they change."""

    start_delay: float = 0.0
    concurrency: int = 1
    #: seconds between a batch's last request finishing and its completion (OpenAI: finalizing)
    finalize: float = 0.0
    #: seconds a cancel of a processing batch takes to take effect (OpenAI: cancelling)
    cancel_delay: float = 0.0

    def latency(self, idx: int, request: RequestRecord | None) -> float:
        """Seconds request `idx` takes once a lane is free for it."""
        return 0.0

    def schedule(self, count: int) -> list[float]:
        """Each request's finish offset from the start: C lanes, request i on lane i mod C, so
        request i finishes when request i-C has finished plus its own latency."""
        lanes = max(1, self.concurrency)
        out = [0.0] * count
        for i in range(count):
            out[i] = (out[i - lanes] if i >= lanes else 0.0) + self.latency(i, None)
        return out

    def fault(self, request: RequestRecord) -> EmulatorError | None:
        """An injected per-request error, if any."""
        return None

    def canned(self, request: RequestRecord) -> str | None:
        """Canned assistant text for this request, if any."""
        return None

    def fail_input(self) -> dict[str, Any] | None:
        """A batch-level fatal input failure to report instead of parsing, if any."""
        return None

    def cancel_after(self) -> int | None:
        """Cancel the batch (as the service) once this many requests have results, if set."""
        return None

    def window_seconds(self, requested: int) -> int:
        """The completion window actually applied (a scenario may shorten or lengthen it)."""
        return requested


HAPPY_PATH = Plan()
