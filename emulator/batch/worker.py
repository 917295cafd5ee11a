"""The batch worker: runs inside the server, on the emulator clock.

Each active batch follows its plan (`emulator.scenario.plan`): it starts at `created_at +
start_delay`, and request i finishes at `started_at + offset[i]`. Whenever it wakes (a submit, a
cancel, a clock change, or the next due instant in real time) the worker processes exactly the
requests that are due by now, in chunks: one query to fetch a chunk, one `executemany` to store its
results together with the batch's counters. A crash between chunks loses nothing that was committed,
and a restart resumes from the stored results.

With an upstream, a chunk's lines are sent to it concurrently (the upstream client bounds how many
are in flight) while the event loop serves the API; a chunk is then a few turns of that bound, so
a cancel waits for little. Lines a scenario fails, or gives canned text, never reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from emulator.batch.parsing import InputParser
from emulator.batch.pricing import discounted, live_cost
from emulator.clock import Clock
from emulator.endpoints import IMAGES
from emulator.errors import (
    BatchCancelled,
    BatchNotCancellable,
    BatchNotFound,
    CompletionWindowExpired,
    EmulatorError,
    InternalError,
)
from emulator.inference.engine import Engine
from emulator.inference.relay import relayed
from emulator.metrics import Metrics
from emulator.records import BatchRecord, RequestRecord, ResultRecord
from emulator.scenario.plan import Plan
from emulator.scenario.registry import Scenarios
from emulator.settings import DEFAULT_SCENARIO
from emulator.status import BatchStatus, is_final
from emulator.store import Store
from emulator.upstream.service import RELAYED, Upstream

log = logging.getLogger("emulator.batch.worker")

CHUNK = 500
#: the longest the worker computes before letting the event loop serve the API in between
SLICE_SECONDS = 0.005


@dataclass
class Progress:
    """What the worker keeps in memory about one active batch."""

    batch: BatchRecord
    plan: Plan
    offsets: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    done: set[int] = field(default_factory=set)
    cursor: int = 0  # position in `order` below which every request has a result

    def plan_schedule(self) -> None:
        self.offsets = self.plan.schedule(self.batch.total_count)
        self.order = list(range(len(self.offsets)))
        if any(b < a for a, b in zip(self.offsets, self.offsets[1:], strict=False)):
            self.order.sort(key=self.offsets.__getitem__)


class Worker:
    """Runs batches: what it needs is the store, the clock, the engine and the scenarios that
    give each batch its plan (the happy path unless told otherwise)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        engine: Engine,
        scenarios: Scenarios | None = None,
        on_final: Callable[[BatchRecord], None] | None = None,
        metrics: Metrics | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        self.store, self.clock, self.engine = store, clock, engine
        self.upstream = upstream
        # upstream calls in flight at once: a chunk is then a few turns of them, not CHUNK lines
        self._bound = None if upstream is None else upstream.concurrency
        self.metrics = metrics or Metrics()
        self.scenarios = scenarios or Scenarios(DEFAULT_SCENARIO)
        # told after a batch's final status is committed (the webhook outbox); must not raise
        self.on_final = on_final
        self.lock = asyncio.Lock()  # held while one chunk of one batch changes
        self._pass = asyncio.Lock()  # one processing pass at a time
        self._wake = asyncio.Event()
        self._progress: dict[int, Progress] = {}
        self._task: asyncio.Task[None] | None = None

    # --- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self.clock.subscribe(self.kick)
        self._task = asyncio.create_task(self._run(), name="batch-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def kick(self) -> None:
        """Something changed (a submit, a cancel, the clock): look again."""
        self._wake.set()

    def forget(self) -> None:
        """Drop in-memory progress (after a reset); it is rebuilt from the store."""
        self._progress.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.run_due()
            except Exception:
                log.exception("batch processing failed; retrying on the next wake-up")
                due = None
            timeout = None if due is None else self.clock.real_seconds_until(due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def run_due(self) -> float | None:
        """Process everything due on the emulator clock now; return when next something is due.

        "Now" is read once, when the pass starts: on a moving clock a batch whose requests come
        due faster than a chunk is stored would otherwise keep the pass to itself until its last
        request, and every other batch would wait for it. What comes due during the pass is the
        next pass's, which starts at once (its due instant is already past)."""
        async with self._pass:
            now = self.clock.now()
            next_due: float | None = None
            for batch in await self.store.active_batches():
                due = await self._advance(batch, now)
                if due is not None:
                    next_due = due if next_due is None else min(next_due, due)
            return next_due

    # --- one batch -----------------------------------------------------------------------------

    async def _progress_of(self, batch: BatchRecord) -> Progress | None:
        """The in-memory progress of an active batch (None if it is final or gone).

        Built from the store's current row, not from `batch`: that was read before the lock was
        taken, and a cancel or a finished pass may have changed the batch since."""
        prog = self._progress.get(batch.seq)
        if prog is None:
            fresh = await self.store.get_batch_by_seq(batch.seq)
            if fresh is None or is_final(fresh.status):
                return None
            prog = Progress(fresh, self.scenarios.plan_for(fresh))
            if fresh.status == BatchStatus.PROCESSING:
                prog.plan_schedule()
                prog.done = await self.store.done_indexes(fresh.seq)
            self._progress[fresh.seq] = prog
        return prog

    async def _advance(self, stored: BatchRecord, now: float) -> float | None:
        try:
            async with self.lock:
                found = await self._progress_of(stored)
                if found is None:
                    return None
                prog, b = found, found.batch
                if b.status == BatchStatus.PENDING:
                    start = min(b.created_at + prog.plan.start_delay, b.expires_at)
                    if now < start:
                        return start
                    await self._begin(prog, start)
            while True:
                async with self.lock:
                    if self._progress.get(prog.batch.seq) is not prog:
                        # dropped meanwhile (a cancel, or a failed write): look again from the store
                        return self.clock.now()
                    if is_final(prog.batch.status):
                        self._progress.pop(prog.batch.seq, None)
                        return None
                    more, due = await self._step(prog, now)
                if not more:
                    return due
                await asyncio.sleep(0)  # let live requests in between chunks
        except BaseException:
            self._forget(stored.seq)
            raise

    def _forget(self, seq: int) -> None:
        """After a failed write the in-memory progress may be ahead of the store (results counted
        but not committed): drop it, so the next pass rebuilds it from the store, the only truth."""
        self._progress.pop(seq, None)

    async def _begin(self, prog: Progress, start: float) -> None:
        """Parse the input: a fatal problem fails the batch; otherwise it starts processing."""
        b = prog.batch
        failure = prog.plan.fail_input()
        parsed = InputParser()
        if failure is None:
            parsed = await self._parse(b)
            failure = None if parsed.ok else parsed.error()
        if failure is not None:
            await self.store.clear_requests(b.seq)
            await self.store.update_batch(b, b.move(BatchStatus.FAILED, start, error=failure))
            self._final(b)
            return
        changed = b.move(BatchStatus.PROCESSING, start, total_count=parsed.count)
        await self.store.update_batch(b, changed)
        prog.plan_schedule()

    async def _parse(self, b: BatchRecord) -> InputParser:
        """Read the input once, storing its requests in chunks as they are checked. A parse cut
        short by a crash left some rows: they go first, and the batch is still pending."""
        parser = InputParser(b.extra.get("endpoint"))
        f = await self.store.get_file(b.tenant_id, b.input_file_id)
        if f is None:
            parser.problems.append(
                {"message": "the input file was deleted before the batch started"}
            )
            return parser
        await self.store.clear_requests(b.seq)
        async for rows in parser.rows(self.store.iter_file_chunks(f.seq)):
            await self.store.insert_requests(b.seq, rows)
        return parser

    async def _step(self, prog: Progress, now: float) -> tuple[bool, float | None]:
        """One chunk of requests due by `now`: (True, None) if more may be due, else (False,
        when next)."""
        b = prog.batch
        assert b.started_at is not None
        cancel_at: float | None = b.extra.get("cancel_at")  # a cancel that takes time
        cutoff = min(now, b.expires_at, now if cancel_at is None else cancel_at)
        budget = self._budget(prog)
        # A batch that could only start when its window closed (a start delay longer than the
        # window) runs nothing: every request expires.
        late = b.started_at >= b.expires_at
        due: list[int] = []
        while not late and prog.cursor < len(prog.order) and len(due) < budget:
            i = prog.order[prog.cursor]
            if b.started_at + prog.offsets[i] > cutoff:
                break
            if i not in prog.done:
                due.append(i)
            prog.cursor += 1
        if due:
            requests = await self.store.fetch_requests(b.seq, due)
            await self._record(prog, await self._execute_all(prog, requests))
            return True, None
        if cancel_at is not None and cutoff >= cancel_at:
            await self._close_rest(prog, BatchStatus.CANCELLED, BatchCancelled(), cancel_at)
            return True, None
        if len(prog.done) >= b.total_count:
            if cancel_at is not None:  # a cancel still taking effect ends the batch, even now
                if now < cancel_at:
                    return False, cancel_at
                await self._finish(prog, BatchStatus.CANCELLED, cancel_at)
                return True, None
            # finalizing: a scenario may make writing the results take time
            at = self._last_finish(prog) + prog.plan.finalize
            if now < at:
                return False, at
            await self._finish(prog, BatchStatus.COMPLETED, at)
            return True, None  # the caller sees the final status and lets go of the progress
        if self._budget(prog) == 0:
            await self._close_rest(
                prog, BatchStatus.CANCELLED, BatchCancelled(), self._last_finish(prog)
            )
            return True, None
        if now >= b.expires_at:
            await self._close_rest(
                prog, BatchStatus.COMPLETED, CompletionWindowExpired(), b.expires_at
            )
            return True, None
        due_at = min(b.started_at + prog.offsets[prog.order[prog.cursor]], b.expires_at)
        return False, due_at if cancel_at is None else min(due_at, cancel_at)

    async def _execute_all(
        self, prog: Progress, requests: list[RequestRecord]
    ) -> list[ResultRecord]:
        """Run a chunk of requests in slices of a few milliseconds, so a status poll or a live
        call waits at most one slice for the event loop, not a whole chunk."""
        if self.upstream is not None:
            return list(await asyncio.gather(*(self._relay(prog, r) for r in requests)))
        results = []
        deadline = time.perf_counter() + SLICE_SECONDS
        for r in requests:
            results.append(self._execute(prog, r))
            if time.perf_counter() >= deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + SLICE_SECONDS
        return results

    def _budget(self, prog: Progress) -> int:
        """How many more requests may run in this chunk (a service cancel stops at N)."""
        chunk = CHUNK if self._bound is None else min(CHUNK, 4 * self._bound)
        limit = prog.plan.cancel_after()
        if limit is None:
            return chunk
        return max(0, min(chunk, limit - len(prog.done)))

    def _last_finish(self, prog: Progress) -> float:
        assert prog.batch.started_at is not None
        finished = [prog.offsets[i] for i in prog.done]
        return prog.batch.started_at + (max(finished) if finished else 0.0)

    def _execute(self, prog: Progress, r: RequestRecord) -> ResultRecord:
        """One request through the engine (or an injected fault), priced at live rates."""
        fault = self._fault(prog, r)
        if fault is not None:
            return fault
        try:
            resp = self._infer(prog, r, prog.plan.canned(r))
        except Exception as exc:
            return self._failed(prog, r, exc)
        return self._priced(prog, r, resp)

    async def _relay(self, prog: Progress, r: RequestRecord) -> ResultRecord:
        """`_execute`, with the upstream answering what the scenario leaves to the engine."""
        assert self.upstream is not None
        fault = self._fault(prog, r)
        if fault is not None:
            return fault
        canned = prog.plan.canned(r)
        try:
            resp = None
            if canned is None and r.url in RELAYED:
                created, identity = _named(prog, r)
                resp = await relayed(
                    self.engine, self.upstream, r.url, r.body, created=created, identity=identity
                )
            if resp is None:  # a replay miss answered by the engine
                resp = self._infer(prog, r, canned)
        except Exception as exc:
            return self._failed(prog, r, exc)
        return self._priced(prog, r, resp)

    def _fault(self, prog: Progress, r: RequestRecord) -> ResultRecord | None:
        fault = prog.plan.fault(r)
        if fault is None:
            return None
        self.metrics.faults[("request", fault.code)] += 1
        return _error(r, fault)

    def _infer(self, prog: Progress, r: RequestRecord, canned: str | None) -> dict[str, Any]:
        created, identity = _named(prog, r)
        return self.engine.infer(
            r.url, r.body, created=created, canned=canned, identity=identity,
            base_url=prog.batch.extra.get("base_url"),  # where the client submitted from
        )  # fmt: skip

    def _failed(self, prog: Progress, r: RequestRecord, exc: Exception) -> ResultRecord:
        if isinstance(exc, EmulatorError):
            return _error(r, exc)
        # an emulator bug: one error record, not a batch stuck for ever
        log.error("request %r of batch %s failed unexpectedly", r.custom_id, prog.batch.id,
                  exc_info=exc)  # fmt: skip
        return _error(r, InternalError("Internal error while running this request."))

    def _priced(self, prog: Progress, r: RequestRecord, resp: dict[str, Any]) -> ResultRecord:
        engine = self.engine
        model = engine.catalogue.get(r.body["model"])
        tokens_in, tokens_out = engine.usage(r.url, resp)
        images = len(resp.get("data", ())) if r.url == IMAGES else 0
        live = live_cost(model, tokens_in, tokens_out, images)
        amount = discounted(model, prog.batch.completion_window, live)
        return ResultRecord(
            r.idx, r.custom_id, True, orjson.dumps(resp), tokens_in, tokens_out, live, amount
        )

    async def _record(
        self, prog: Progress, results: list[ResultRecord], changed: tuple[str, ...] = ()
    ) -> None:
        """Count a chunk of results and store it, with the batch fields `changed` besides the
        counters, in one transaction."""
        b = prog.batch
        failed = b.failed_count
        for res in results:
            if res.ok:
                b.completed_count += 1
                b.input_tokens += res.input_tokens
                b.output_tokens += res.output_tokens
                b.cost_live += res.cost_live
                b.cost_amount += res.cost_amount
            else:
                b.failed_count += 1
            prog.done.add(res.idx)
        await self.store.record_results(b, results, changed)
        failed = b.failed_count - failed
        self.metrics.processed["failed"] += failed
        self.metrics.processed["succeeded"] += len(results) - failed

    async def _finish(self, prog: Progress, status: BatchStatus, at: float) -> None:
        await self.store.update_batch(prog.batch, prog.batch.move(status, at))
        self._final(prog.batch)

    def _final(self, b: BatchRecord) -> None:
        if self.on_final is not None:
            self.on_final(b)

    async def _close_rest(
        self, prog: Progress, status: BatchStatus, error: EmulatorError, at: float, **changes: int
    ) -> None:
        """Error records of `error` for every request without a result, and the final status,
        in one transaction: a crash half-way through a cancel must not leave half of it."""
        b = prog.batch
        for name, value in changes.items():  # set first: the records below depend on them
            setattr(b, name, value)
        rest = [i for i in range(b.total_count) if i not in prog.done]
        records: list[ResultRecord] = []
        # one payload shared by every record: an orjson result keeps a buffer of 4 KiB or more
        # whatever its length, so 50,000 payloads of their own would hold ~200 MiB until stored
        payload = _error_payload(error)
        for start in range(0, len(rest), CHUNK):
            requests = await self.store.fetch_requests(b.seq, rest[start : start + CHUNK])
            records += [ResultRecord(r.idx, r.custom_id, False, payload) for r in requests]
        prog.cursor = len(prog.order)
        await self._record(prog, records, b.move(status, at, **changes))
        self._final(b)

    # --- cancel --------------------------------------------------------------------------------

    async def cancel(self, stored: BatchRecord) -> BatchRecord:
        """Cancel now: finished requests keep their results, the rest get `BATCH_CANCELLED`."""
        async with self.lock:
            prog = await self._progress_of(stored)
            if prog is None:
                fresh = await self.store.get_batch_by_seq(stored.seq)
                if fresh is None:
                    raise BatchNotFound(f"Batch '{stored.id}' not found.")
                raise BatchNotCancellable(f"Batch '{stored.id}' is already {fresh.status}.")
            b = prog.batch
            if is_final(b.status):  # finished by a pass that has not let go of it yet
                raise BatchNotCancellable(f"Batch '{b.id}' is already {b.status}.")
            if b.status == BatchStatus.PROCESSING and prog.plan.cancel_delay > 0:
                await self._cancel_later(prog)
                return b
            try:
                total = b.total_count
                if b.status == BatchStatus.PENDING:
                    # the requests get their BATCH_CANCELLED records; an input that does not
                    # parse has none
                    parsed = await self._parse(b)
                    total = parsed.count if parsed.ok else 0
                await self._close_rest(
                    prog, BatchStatus.CANCELLED, BatchCancelled(), self.clock.now(),
                    total_count=total,
                )  # fmt: skip
            finally:
                self._forget(b.seq)
        self.kick()
        return b

    async def _cancel_later(self, prog: Progress) -> None:
        """A cancel that takes `cancel_delay` (OpenAI's `cancelling`): requests due before then
        still finish, the rest are cancelled then. Asking again changes nothing."""
        b = prog.batch
        if "cancel_at" not in b.extra:
            now = self.clock.now()
            changed = b.note(cancelling_at=now, cancel_at=now + prog.plan.cancel_delay)
            await self.store.update_batch(b, changed)
        self.kick()


def _named(prog: Progress, r: RequestRecord) -> tuple[int, str]:
    """(created, identity) of a request's answer: the instant it finished, and its name
    (custom_ids are unique within a batch)."""
    assert prog.batch.started_at is not None
    return int(prog.batch.started_at + prog.offsets[r.idx]), f"{prog.batch.id}/{r.custom_id}"


def _error(r: RequestRecord, err: EmulatorError) -> ResultRecord:
    return ResultRecord(r.idx, r.custom_id, False, _error_payload(err))


def _error_payload(err: EmulatorError) -> bytes:
    """An error record's payload, as exact-size bytes (see `_close_rest`)."""
    return bytes(memoryview(orjson.dumps({"code": err.code, "message": err.message})))
