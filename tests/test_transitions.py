"""Status changes and what they write: `BatchRecord.move` names every field it changes, and a
worker built from a store, a clock and an engine alone leaves the store holding exactly the
batch it has in memory, whatever transition it last made (checked on a reopened database)."""

from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from emulator.batch.service import Batches
from emulator.batch.worker import Worker
from emulator.clock import Clock
from emulator.errors import ConfigError
from emulator.inference.catalogue import load_catalogue
from emulator.inference.engine import Engine
from emulator.records import BatchRecord
from emulator.status import STAMPS, TRANSITIONS, BatchStatus
from emulator.store import SCHEMA_VERSION, Store

TENANT = "tenant-a"
START = datetime(2026, 1, 1, tzinfo=UTC)


def record(status: BatchStatus) -> BatchRecord:
    return BatchRecord(
        seq=1, id="batch_x", tenant_id=TENANT, status=status, completion_window="24h",
        input_file_id="file-x", input_file_url="scaigrid://file/file-x", metadata={},
        total_count=3, created_at=0.0, expires_at=86400.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("current", "to"), [(a, b) for a, nexts in TRANSITIONS.items() for b in sorted(nexts)]
)
def test_move_names_every_field_it_changes(current: BatchStatus, to: BatchStatus) -> None:
    b = record(current)
    before = dataclasses.asdict(b)
    changes: dict[str, Any] = {"total_count": 2}
    if to == BatchStatus.FAILED:
        changes["error"] = {"code": "INPUT_PARSE_ERROR", "message": "bad"}
    named = b.move(to, 42.0, **changes)
    after = dataclasses.asdict(b)
    assert {k for k in after if after[k] != before[k]} <= set(named)
    assert set(named) == {"status", STAMPS[to], *changes}
    assert b.status == to and getattr(b, STAMPS[to]) == 42.0


class Recorder:
    """Wraps the store's batch writes, keeping a copy of the in-memory batch at each write."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.last: BatchRecord | None = None
        for name in ("update_batch", "record_results", "insert_batch"):
            monkeypatch.setattr(store, name, self._wrap(getattr(store, name)))

    def _wrap(self, real: Any) -> Any:
        async def write(b: BatchRecord, *args: Any) -> None:
            await real(b, *args)
            self.last = copy.deepcopy(b)

        return write


async def services(path: Path) -> tuple[Store, Clock, Worker, Batches]:
    """The batch services built as a unit test builds them: no core, no HTTP."""
    store = Store(str(path))
    await store.open()
    clock = Clock("frozen", start=START)
    worker = Worker(store, clock, Engine(0, load_catalogue()))
    batches = Batches(store, clock, worker)
    await batches.files.start()
    await batches.start()
    return store, clock, worker, batches


def submit_body(lines: Sequence[bytes], **extra: Any) -> dict[str, Any]:
    return {"input_file_base64": base64.b64encode(b"\n".join(lines) + b"\n").decode(), **extra}


def chat(i: int) -> bytes:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": f"Hi {i}"}]}
    return orjson.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/inference/chat",
                         "body": body})  # fmt: skip


SLOW = "name: slow\nprocessing:\n  start_delay: 30m\n  latency: 10m\n  concurrency: 1\n"


async def run_case(case: str, batches: Batches, worker: Worker, clock: Clock) -> BatchRecord:
    lines = [chat(i) for i in range(5 if case == "expired" else 3)]
    if case == "failed":
        lines = [b"not json"]
    if case in ("cancel-processing", "expired"):
        batches.scenarios.set_tenant(TENANT, batches.scenarios.from_yaml(SLOW))
    window = "1h" if case == "expired" else "24h"
    b = await batches.create_batch(TENANT, submit_body(lines, endpoint_completion_window=window))
    if case == "cancel-pending":
        return await batches.cancel_batch(TENANT, b.id)
    if case == "cancel-processing":
        clock.advance(45 * 60)  # started at 30 min, one request done at 40 min
        await worker.run_due()
        return await batches.cancel_batch(TENANT, b.id)
    clock.advance(2 * 3600 if case == "expired" else 0)
    await worker.run_due()
    return await batches.get_batch(TENANT, b.id)


@pytest.mark.parametrize(
    ("case", "status", "counts"),
    [
        ("completed", "completed", (3, 0)),
        ("failed", "failed", (0, 0)),
        ("cancel-pending", "cancelled", (0, 3)),
        ("cancel-processing", "cancelled", (1, 2)),
        ("expired", "completed", (3, 2)),  # done at 40, 50 and 60 min of a 1 h window
    ],
)
async def test_every_field_a_transition_sets_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, status: str, counts: tuple[int, int]
) -> None:
    store, clock, worker, batches = await services(tmp_path / "emulator.db")
    recorder = Recorder(store, monkeypatch)
    final = await run_case(case, batches, worker, clock)
    assert final.status == status
    assert (final.completed_count, final.failed_count) == counts
    in_memory = recorder.last
    assert in_memory is not None and in_memory.status == status
    await store.close()
    reopened = Store(str(tmp_path / "emulator.db"))
    await reopened.open()
    try:
        assert await reopened.get_batch(TENANT, final.id) == in_memory
    finally:
        await reopened.close()


async def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(str(path))
    await store.open()
    async with store._write() as db:
        await db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    await store.close()
    with pytest.raises(ConfigError) as caught:
        await Store(str(path)).open()
    message = str(caught.value)
    assert str(path) in message and "99" in message and str(SCHEMA_VERSION) in message
