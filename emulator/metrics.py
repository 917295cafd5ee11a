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

PREFIX = "scaigrid_emulator_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
#: methods counted by name; any other is `other` (a method is the client's free text)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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

    def request(self, route: str, method: str, status: int) -> None:
        self.requests[(route, method if method in METHODS else "other", status)] += 1


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
    return ("\n".join(out) + "\n").encode()


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
