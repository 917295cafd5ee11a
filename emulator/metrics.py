"""Counters for `GET /metrics`, and their rendering in Prometheus' text format (version 0.0.4).

Counting is on the live path, so each count is one dict increment under a bounded key: a route's
template (`/v1/inference/batch/{batch_id}`, never the raw path; `unmatched` for no route), a
known method, a status. What the store already knows (batches by status, the requests still to
run) is read when the metrics are scraped, not counted as it happens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from emulator.errors import (
    BackendError,
    BackendRateLimited,
    BackendTimeout,
    EmulatorError,
    UpstreamShapeMismatch,
)

PREFIX = "scaigrid_emulator_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
#: methods counted by name; any other is `other` (a method is the client's free text)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: an upstream call's outcome, by the code of the error it ended in (`ok` when it ended in none)
UPSTREAM_OUTCOMES = {
    BackendRateLimited.code: "rate_limited",
    BackendTimeout.code: "timeout",
    BackendError.code: "error",
    UpstreamShapeMismatch.code: "shape_mismatch",
}
#: what a look into a replay folder finds (`miss`: no recording, or one that cannot be read)
REPLAY_OUTCOMES = ("hit", "miss")


class Metrics:
    """What the emulator counts while it runs. Counters start at zero with the process, as
    Prometheus expects; a control-plane reset does not clear them."""

    def __init__(self) -> None:
        #: (route template, method, status) -> requests answered
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        #: outcome (`succeeded`, `failed`) -> batch requests the worker ran
        self.processed: defaultdict[str, int] = defaultdict(int)
        #: outcome (`success`, `retry`, `failed`) -> webhook delivery attempts
        self.deliveries: defaultdict[str, int] = defaultdict(int)
        #: (kind, code) -> faults a scenario injected: `api` (an API call refused or
        #: rate-limited), `request` (a live or batch request failed), `webhook` (an attempt spoilt)
        self.faults: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: (route, outcome) -> calls the upstream answered, or failed to (`UPSTREAM_OUTCOMES`)
        self.upstream_calls: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: upstream calls holding one of the `--upstream-concurrency` turns right now
        self.upstream_in_flight = 0
        #: outcome (`REPLAY_OUTCOMES`) -> requests looked up in the `--replay` folder
        self.replays: defaultdict[str, int] = defaultdict(int)
        #: files written to the `--record` folder
        self.recordings = 0

    def request(self, route: str, method: str, status: int) -> None:
        self.requests[(route, method if method in METHODS else "other", status)] += 1

    def upstream_call(self, route: str, error: EmulatorError | None) -> None:
        """One call's outcome: `ok`, or the kind of the error that request now carries."""
        outcome = "ok" if error is None else UPSTREAM_OUTCOMES.get(error.code, "error")
        self.upstream_calls[(route, outcome)] += 1


@dataclass(frozen=True, slots=True)
class Census:
    """What the store says at scrape time: batches by status, and requests still to run."""

    batches: Mapping[str, int]
    queued: int


def render(metrics: Metrics, census: Census, statuses: Iterable[str], version: str) -> bytes:
    """The exposition text: every family with its HELP and TYPE, samples sorted for a stable
    diff. `statuses` are every batch status, so a status with no batch shows 0."""
    out: list[str] = []
    _family(out, "info", "gauge", "The emulator's version.", [({"version": version}, 1)])
    _family(
        out, "http_requests_total", "counter",
        "Requests answered, by route template, method and status.",
        [({"route": r, "method": m, "status": str(s)}, n)
         for (r, m, s), n in sorted(metrics.requests.items())],
    )  # fmt: skip
    _family(
        out, "batches", "gauge", "Batches in the store, by status.",
        [({"status": s}, census.batches.get(s, 0)) for s in statuses],
    )  # fmt: skip
    _family(
        out, "batch_queue_depth", "gauge",
        "Requests of pending and processing batches not yet run.", [({}, census.queued)],
    )  # fmt: skip
    _family(
        out, "batch_requests_processed_total", "counter",
        "Batch requests the worker ran, by outcome.",
        [({"outcome": o}, metrics.processed.get(o, 0)) for o in ("succeeded", "failed")],
    )  # fmt: skip
    _family(
        out, "webhook_deliveries_total", "counter",
        "Webhook delivery attempts, by outcome (retry: failed, another attempt is due).",
        [({"outcome": o}, metrics.deliveries.get(o, 0)) for o in ("success", "retry", "failed")],
    )  # fmt: skip
    _family(
        out, "scenario_faults_total", "counter", "Faults scenarios injected, by kind and code.",
        [({"kind": k, "code": c}, n) for (k, c), n in sorted(metrics.faults.items())],
    )  # fmt: skip
    _upstream(out, metrics)
    return ("\n".join(out) + "\n").encode()


def _upstream(out: list[str], metrics: Metrics) -> None:
    _family(
        out, "upstream_calls_total", "counter",
        "Calls to the upstream, by route and outcome (ok, rate_limited, timeout, error, "
        "shape_mismatch); a replayed recording is not a call.",
        [({"route": r, "outcome": o}, n) for (r, o), n in sorted(metrics.upstream_calls.items())],
    )  # fmt: skip
    _family(
        out, "upstream_calls_in_flight", "gauge",
        "Calls to the upstream sent and not yet answered (at most --upstream-concurrency).",
        [({}, metrics.upstream_in_flight)],
    )  # fmt: skip
    _family(
        out, "upstream_replays_total", "counter",
        "Requests looked up in the --replay folder, by outcome (miss: none, or unreadable).",
        [({"outcome": o}, metrics.replays.get(o, 0)) for o in REPLAY_OUTCOMES],
    )  # fmt: skip
    _family(
        out, "upstream_recordings_total", "counter",
        "Upstream answers written to the --record folder.", [({}, metrics.recordings)],
    )  # fmt: skip


def _family(
    out: list[str],
    name: str,
    kind: str,
    help_: str,
    samples: Iterable[tuple[Mapping[str, str], int]],
) -> None:
    full = PREFIX + name
    out.append(f"# HELP {full} {help_}")
    out.append(f"# TYPE {full} {kind}")
    for labels, value in samples:
        shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{full}{{{shown}}} {value}" if shown else f"{full} {value}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
