"""The client verdict: what a client did that production ScaiGrid would refuse or that wastes the
service, judged from the request journal when someone asks (nothing is counted on the live path).

`judge` reads the journal's entries, plus a few facts about the tenant's batches that the caller
looks up in the store (`BatchFacts`), and answers findings: each names its check, the tenant,
what it is about (a batch, a route, a key), says what happened in a sentence, and lists its
evidence, the requests that show it (ids and emulator times).

A check uses what the journal still holds. Summaries (kept across a restart) are enough for
polling, the rate limit, refused results links and downloads; `Retry-After`, error codes and
request bodies come from exchanges still held in memory (see `emulator.journal`), and an entry
whose exchange is gone is not judged on them. Requests that name no tenant (no key or an unknown
one) are not judged, except a results download, which the journal files under the batch's owner.
Requests with the `X-Emulator-Probe` header are the test's own look at the state, not the
client's (the pytest fixture's `wait_for` sends it), and are not judged either.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from emulator import wire_oai
from emulator.clock import iso
from emulator.journal import Kept, redact_authorization

#: a request header that marks a request as the test's own, not the client's
PROBE_HEADER = "X-Emulator-Probe"
#: the window of the production rate limit (`Thresholds.rate_limit` requests per key in it)
RATE_WINDOW = 60.0
#: evidence listed per finding (`evidence_count` has them all)
EVIDENCE_CAP = 20
#: statuses the same request always gets again: retrying it unchanged cannot help
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 422})
#: codes that a retry does not lift whatever their status
PERMANENT_CODES = frozenset({"QUOTA_EXCEEDED"})
#: every check, in the order findings are listed
CHECKS = (
    "poll_rate",
    "retry_after_ignored",
    "retried_permanent_error",
    "results_url_refused",
    "results_never_downloaded",
    "duplicate_input",
    "rate_limit_exceeded",
)

_POLL = re.compile(r"/v1/inference/batch/([^/]+)|/oai/v1/batches/([^/]+)")
_RESULTS = re.compile(r"/v1/inference/batch/([^/]+)/results")
_RESULT_FILE = re.compile(r"/oai/v1/files/([^/]+)/content")
_SUBMITS = frozenset({("POST", "/v1/inference/batch"), ("POST", "/oai/v1/batches")})
_PROBE = PROBE_HEADER.lower().encode()


@dataclass(frozen=True)
class Thresholds:
    """What the checks measure against; the defaults are the `verdict_*` settings'."""

    min_poll_interval: float = 10.0  # seconds between two polls of one batch
    rate_limit: int = 60  # requests per key per minute, as production enforces


@dataclass(frozen=True)
class BatchFacts:
    """What the verdict needs to know of a batch beyond the journal."""

    id: str
    tenant_id: str
    status: str
    created_at: float
    completed_at: float | None
    input: str  # what identifies its input: the input file's sha256, else its URL


class Call:
    """One journal entry, with the facts the checks read from its exchange, worked out once."""

    __slots__ = ("time", "method", "path", "query", "status", "tenant_id", "request_id",
                 "exchange", "_code")  # fmt: skip

    def __init__(self, entry: tuple[Any, ...]) -> None:
        (self.time, self.method, self.path, self.query, self.status, self.tenant_id,
         self.request_id, exchange) = entry  # fmt: skip
        self.exchange: Kept | None = exchange
        self._code: str | None | bool = False  # False: not worked out yet

    @property
    def probe(self) -> bool:
        return self.exchange is not None and self.exchange.request_header(_PROBE) is not None

    @property
    def code(self) -> str | None:
        """The error code of the answer (native or OpenAI surface), when it is known."""
        if self._code is False:
            self._code = None
            if self.status >= 400 and self.exchange is not None:
                body = self.exchange.response_json()
                error = body.get("error") if isinstance(body, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                if isinstance(code, str):
                    oai = self.path.startswith("/oai/")
                    self._code = wire_oai.native_code(code) if oai else code
        return self._code if isinstance(self._code, str) else None

    def retry_after(self) -> float | None:
        raw = self.exchange.response_header(b"retry-after") if self.exchange else None
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def key(self) -> bytes | None:
        return self.exchange.request_header(b"authorization") if self.exchange else None

    def identity(self) -> tuple[Any, ...] | None:
        """What makes two requests the same request; None when the body is no longer known."""
        if self.exchange is None:
            return None if self.method in ("POST", "PUT", "PATCH") else (
                self.method, self.path, self.query, b"")  # fmt: skip
        return (self.method, self.path, self.query, self.exchange.request_raw())

    def shown(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)

    def evidence(self, **extra: Any) -> dict[str, Any]:
        return {"request_id": self.request_id, "time": iso(self.time), "method": self.method,
                "path": self.path, "status": self.status, **extra}  # fmt: skip


def judge(
    entries: Iterable[tuple[Any, ...]],
    batches: Sequence[BatchFacts],
    thresholds: Thresholds,
    journal_start: float | None,
) -> list[dict[str, Any]]:
    """Every finding on the clients behind `entries` (journal entries, oldest first) and
    `batches` (their tenants' batches); `journal_start` is the time of the oldest entry the
    journal keeps (a batch made before it is not judged on what the journal no longer shows)."""
    by_tenant: defaultdict[str, list[Call]] = defaultdict(list)
    for entry in entries:
        call = Call(entry)
        if call.tenant_id is not None and not call.probe:
            by_tenant[call.tenant_id].append(call)
    batches_of: defaultdict[str, list[BatchFacts]] = defaultdict(list)
    for b in batches:
        if journal_start is not None and b.created_at >= journal_start:
            batches_of[b.tenant_id].append(b)
    findings: list[dict[str, Any]] = []
    for tenant in sorted(by_tenant.keys() | batches_of.keys()):
        calls = sorted(by_tenant.get(tenant, []), key=lambda c: c.time)
        mine = batches_of.get(tenant, [])
        for check in _CHECKS:
            findings.extend(check(tenant, calls, mine, thresholds))
    order = {name: n for n, name in enumerate(CHECKS)}
    findings.sort(key=lambda f: (order[f["check"]], f["tenant_id"], f["subject"]))
    return findings


def _finding(
    check: str, tenant: str, subject: str, message: str, evidence: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"check": check, "tenant_id": tenant, "subject": subject, "message": message,
            "evidence": evidence[:EVIDENCE_CAP], "evidence_count": len(evidence)}  # fmt: skip


def _s(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- the checks: each (tenant, its calls oldest first, its batches, thresholds) -> findings ------

Check = Callable[[str, list[Call], list[BatchFacts], Thresholds], list[dict[str, Any]]]


def _polls(calls: list[Call]) -> defaultdict[str, list[Call]]:
    """Status reads per batch id, either surface."""
    out: defaultdict[str, list[Call]] = defaultdict(list)
    for c in calls:
        if c.method == "GET" and (m := _POLL.fullmatch(c.path)):
            out[m.group(1) or m.group(2)].append(c)
    return out


def poll_rate(
    tenant: str, calls: list[Call], _b: list[BatchFacts], t: Thresholds
) -> list[dict[str, Any]]:
    out = []
    for batch_id, polls in sorted(_polls(calls).items()):
        early = [(c, c.time - prev.time) for prev, c in pairwise(polls)
                 if c.time - prev.time < t.min_poll_interval]  # fmt: skip
        if not early:
            continue
        shortest = min(gap for _, gap in early)
        message = (
            f"polled {batch_id} {_s(len(polls), 'time')}; {len(early)} of them came less than "
            f"{t.min_poll_interval:g} s after the previous poll (shortest gap {shortest:g} s)"
        )
        evidence = [c.evidence(since_previous=round(gap, 3)) for c, gap in early]
        out.append(_finding("poll_rate", tenant, batch_id, message, evidence))
    return out


def retry_after_ignored(
    tenant: str, calls: list[Call], _b: list[BatchFacts], _t: Thresholds
) -> list[dict[str, Any]]:
    """A request sent before an earlier answer's `Retry-After` had passed: to the same route, or
    to any route after `RATE_LIMITED` (the limit is the key's, not the route's)."""
    early: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for i, refused in enumerate(calls):
        wait = refused.retry_after()
        if wait is None:
            continue
        keywide = refused.code == "RATE_LIMITED"
        subject = "any route" if keywide else f"{refused.method} {refused.path}"
        for c in calls[i + 1 :]:
            if c.time >= refused.time + wait:
                break
            if keywide or (c.method, c.path) == (refused.method, refused.path):
                early[subject].setdefault(
                    c.request_id,
                    c.evidence(
                        after=refused.request_id,
                        retry_after=wait,
                        waited=round(c.time - refused.time, 3),
                    ),  # fmt: skip
                )
    out = []
    for subject, found in sorted(early.items()):
        evidence = list(found.values())
        message = (
            f"sent {_s(len(evidence), 'request')} to {subject} before the Retry-After of an "
            "earlier answer had passed"
        )
        out.append(_finding("retry_after_ignored", tenant, subject, message, evidence))
    return out


def _permanent(c: Call) -> bool:
    if _RESULTS.fullmatch(c.path):  # a refused results link is its own check
        return False
    return c.status in PERMANENT_STATUSES or c.code in PERMANENT_CODES


def retried_permanent_error(
    tenant: str, calls: list[Call], _b: list[BatchFacts], _t: Thresholds
) -> list[dict[str, Any]]:
    """The same request (method, path, query and body) sent again after an answer it will
    always get: a 4xx that depends only on the request, or `QUOTA_EXCEEDED`."""
    refusals: dict[tuple[Any, ...], Call] = {}
    retried: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        ident = c.identity()
        if ident is None:
            continue
        refusal = refusals.get(ident)
        if refusal is not None:
            subject = f"{c.method} {c.path}"
            retried[(subject, refusal.shown())].append(c.evidence(after=refusal.request_id))
        if _permanent(c):
            refusals[ident] = c
    out = []
    for (subject, answer), evidence in sorted(retried.items()):
        message = (
            f"sent {subject} again unchanged {_s(len(evidence), 'time')} after {answer}, an "
            "answer the same request always gets"
        )
        out.append(_finding("retried_permanent_error", tenant, subject, message, evidence))
    return out


def results_url_refused(
    tenant: str, calls: list[Call], _b: list[BatchFacts], _t: Thresholds
) -> list[dict[str, Any]]:
    refused: defaultdict[str, list[Call]] = defaultdict(list)
    for c in calls:
        if c.status == 403 and c.method == "GET" and (m := _RESULTS.fullmatch(c.path)):
            refused[m.group(1)].append(c)
    out = []
    for batch_id, found in sorted(refused.items()):
        answers = ", ".join(sorted({c.shown() for c in found}))
        message = (
            f"fetched the results of {batch_id} through a link that was expired or altered "
            f"({_s(len(found), 'time')}: {answers}); read the batch again for a fresh link"
        )
        evidence = [c.evidence(code=c.code) for c in found]
        out.append(_finding("results_url_refused", tenant, batch_id, message, evidence))
    return out


def _downloaded(calls: list[Call]) -> set[str]:
    """Batches whose results a call downloaded: the results link, or an OpenAI result file."""
    out = set()
    for c in calls:
        if c.method != "GET" or not 200 <= c.status < 300:
            continue
        if m := _RESULTS.fullmatch(c.path):
            out.add(m.group(1))
        elif (m := _RESULT_FILE.fullmatch(c.path)) and (
            batch_id := wire_oai.batch_of_result_file(m.group(1))
        ):
            out.add(batch_id)
    return out


def results_never_downloaded(
    tenant: str, calls: list[Call], batches: list[BatchFacts], _t: Thresholds
) -> list[dict[str, Any]]:
    done = _downloaded(calls)
    polls = _polls(calls)
    out = []
    for b in batches:
        if b.status != "completed" or b.id in done or b.completed_at is None:
            continue
        seen = [c.evidence() for c in polls.get(b.id, []) if c.time >= b.completed_at]
        message = (
            f"{b.id} completed at {iso(b.completed_at)} and its results were never downloaded"
            + (f" (its status was read {_s(len(seen), 'time')} since)" if seen else "")
        )
        out.append(_finding("results_never_downloaded", tenant, b.id, message, seen))
    return out


def _submitted(calls: list[Call]) -> dict[str, Call]:
    """The accepted submit behind each batch id, where the answer is still held."""
    out = {}
    for c in calls:
        if (c.method, c.path) not in _SUBMITS or not 200 <= c.status < 300 or not c.exchange:
            continue
        body = c.exchange.response_json()
        data = body.get("data", body) if isinstance(body, dict) else None
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            out[data["id"]] = c
    return out


def duplicate_input(
    tenant: str, calls: list[Call], batches: list[BatchFacts], _t: Thresholds
) -> list[dict[str, Any]]:
    by_input: defaultdict[str, list[BatchFacts]] = defaultdict(list)
    for b in batches:
        by_input[b.input].append(b)
    submits = _submitted(calls)
    out = []
    for same in by_input.values():
        if len(same) < 2:
            continue
        ids = [b.id for b in same]
        evidence = [
            submits[b.id].evidence(batch_id=b.id)
            if b.id in submits
            else {"request_id": None, "time": iso(b.created_at), "batch_id": b.id}
            for b in same
        ]
        message = (
            f"submitted the same input {len(same)} times ({', '.join(ids)}): each submit is a "
            "new batch, run and billed again"
        )
        out.append(_finding("duplicate_input", tenant, same[0].id, message, evidence))
    return out


def rate_limit_exceeded(
    tenant: str, calls: list[Call], _b: list[BatchFacts], t: Thresholds
) -> list[dict[str, Any]]:
    """More than `rate_limit` requests with one key within a minute: production answers the
    ones over it 429 `RATE_LIMITED`. Links that need no key (results, images) do not count."""
    windows: defaultdict[bytes, deque[float]] = defaultdict(deque)
    over: defaultdict[bytes, list[Call]] = defaultdict(list)
    peak: defaultdict[bytes, int] = defaultdict(int)
    for c in calls:
        if not c.path.startswith(("/v1/", "/oai/v1/")) or _RESULTS.fullmatch(c.path):
            continue
        if c.path.startswith("/v1/inference/images/"):
            continue
        who = c.key() or b""  # the key, when the exchange still shows it
        window = windows[who]
        while window and window[0] <= c.time - RATE_WINDOW:
            window.popleft()
        window.append(c.time)
        peak[who] = max(peak[who], len(window))
        if len(window) > t.rate_limit:
            over[who].append(c)
    out = []
    for who, found in over.items():
        subject = redact_authorization(who) if who else "the tenant's requests"
        message = (
            f"made {peak[who]} requests within {RATE_WINDOW:g} s with one key; production allows "
            f"{t.rate_limit} a minute per key and would have answered "
            f"{_s(len(found), 'request')} 429 RATE_LIMITED"
        )
        evidence = [c.evidence() for c in found]
        out.append(_finding("rate_limit_exceeded", tenant, subject, message, evidence))
    return out


_CHECKS: tuple[Check, ...] = (
    poll_rate,
    retry_after_ignored,
    retried_permanent_error,
    results_url_refused,
    results_never_downloaded,
    duplicate_input,
    rate_limit_exceeded,
)
