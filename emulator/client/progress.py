"""What `batch submit --wait` shows while a batch runs: a live bar (rich) on a terminal, plain
lines otherwise (a log, a pipe, CI) or when rich is not installed.

Rate and ETA are worked out from the batch itself: requests done since `started_at`, over the
server's time of each answer (its `Date` header, which on the emulator is the emulator clock).
So a moved clock gives the rate the batch would have had, and a test's numbers are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a batch stands: its status, requests done of total, and, once it is running,
    requests per second and seconds left at that rate."""

    batch_id: str
    status: str
    done: int
    total: int
    rate: float | None
    eta: float | None


def snapshot(batch: dict[str, Any], now: float | None) -> Snapshot:
    done = int(batch["completed_count"]) + int(batch["failed_count"])
    total = int(batch["total_count"])
    rate = eta = None
    started = batch.get("started_at")
    ended = batch.get("completed_at") or batch.get("cancelled_at") or batch.get("failed_at")
    until = _instant(ended) if ended else now  # a batch that ended ran until then
    if started and until is not None:
        elapsed = until - _instant(started)
        if elapsed > 0 and done:
            rate = done / elapsed
            eta = (total - done) / rate
    return Snapshot(batch["id"], batch["status"], done, total, rate, eta)


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def rate_text(rate: float | None) -> str:
    return "- req/s" if rate is None else f"{rate:.3g} req/s"


def line(s: Snapshot) -> str:
    percent = 100 * s.done // s.total if s.total else 0
    return (
        f"{s.batch_id} {s.status} {s.done}/{s.total} ({percent}%) {rate_text(s.rate)} "
        f"ETA {hms(s.eta)}"
    )


class Progress(Protocol):
    def show(self, s: Snapshot) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """One line per change of status or count."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last: tuple[str, int] | None = None

    def show(self, s: Snapshot) -> None:
        if (s.status, s.done) != self.last:
            self.last = (s.status, s.done)
            print(line(s), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """rich's live bar: status, bar, done/total, rate and ETA."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=stream, force_terminal=True),
        )
        self.task = self.bar.add_task("", total=None, rate=rate_text(None), eta=hms(None))
        self.bar.start()

    def show(self, s: Snapshot) -> None:
        self.bar.update(
            self.task,
            description=f"{s.batch_id} {s.status}",
            completed=s.done,
            total=s.total or None,
            rate=rate_text(s.rate),
            eta=hms(s.eta),
        )

    def close(self) -> None:
        self.bar.stop()


def progress_for(stream: IO[str]) -> Progress:
    """The live bar on a terminal when rich is installed (`pip install
    'scaigrid-emulator[cli]'`), else plain lines."""
    if stream.isatty():
        try:
            return RichProgress(stream)
        except ImportError:
            pass
    return PlainProgress(stream)
