"""Durability: a real `scaigrid-emulator serve` process is SIGKILLed half-way through a
20,000-request batch, restarted on the same SQLite file, and the batch finishes with exactly one
result per request, in input order, with counters that match the results file.

How the kill is made to land mid-way, deterministically:

* First run: `--clock scaled --clock-scale 1` (emulator time = real time) with a scenario whose
  processing takes 5 ms per request on 5 lanes, so the 20,000 requests are scheduled over
  20,000 / 5 * 5 ms = 20 s of real time. The test polls the batch status and kills the process as
  soon as 0 < completed_count < total_count, which is within the first second or so.
* Second run: the batch keeps the scenario it was submitted with (its plan is stored with it), so
  `--scenario happy-path` alone would not speed it up. The restarted server continues the
  database's clock (it overrides `--clock frozen`, and never starts before the last stored
  instant), and the test advances it by an hour: every request of the 20 s schedule is then due
  at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import KEY, START, Harness, b64, chat_line, embed_line, jsonl
from webhook_helpers import (
    SECRET,
    SINK,
    events_of,
    expected_signature,
    failing_first,
    receiver,
    register,
    sink_items,
)

from emulator.api.app import create_app
from emulator.core import Emulator
from emulator.settings import Settings
from emulator.store import Store

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 20_000
AUTH = {"Authorization": f"Bearer {KEY}"}
SCENARIO = """\
name: durability-latency
description: 20,000 requests spread over 20 s of emulator time.
processing:
  latency: 5ms
  concurrency: 5
"""


class Server:
    """One `python -m emulator serve` subprocess; `url` is read from its first stdout line."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.stderr = (tmp / f"{name}.stderr").open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", "0", "--log-level", "warning",
             "--db", str(tmp / "e.db"), *args],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=self.stderr,
        )  # fmt: skip
        assert self.proc.stdout is not None
        try:
            first = self.proc.stdout.readline().decode()
            assert "listening on http://" in first, (first, self.log())
            self.url = first.rsplit(" ", 1)[-1].strip()
            self.client = httpx.Client(base_url=self.url, headers=AUTH, timeout=30.0)
            self._wait_healthy()
        except BaseException:
            self.proc.kill()  # a server that did not come up must not outlive the test
            self.proc.wait()
            raise

    def _wait_healthy(self) -> None:
        # The socket is bound before the line is printed, so connections queue until uvicorn
        # accepts them; a short timeout plus a bounded number of retries covers the start-up.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                resp = self.client.get("/_emulator/health", timeout=0.25)
            except httpx.TransportError:
                assert self.proc.poll() is None, self.log()
                continue
            if resp.status_code == 200 and resp.json()["data"]["status"] == "healthy":
                return
        raise AssertionError(f"the emulator never became healthy: {self.log()}")

    def log(self) -> str:
        self.stderr.flush()
        return Path(self.stderr.name).read_text(errors="replace")[-4000:]

    def batch(self, batch_id: str) -> dict[str, Any]:
        resp = self.client.get(f"/v1/inference/batch/{batch_id}")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()["data"]
        return data

    def kill(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.returncode is None:
            s.kill()


def requests() -> list[dict[str, Any]]:
    """Mixed input: every third request an embedding, the rest chat, each with its own text.
    Embeddings ask for 64 dimensions: 1,536 would make the results file ~450 MB."""
    out = []
    for i in range(TOTAL):
        cid = f"req-{i:05d}"
        if i % 3 == 2:
            line = embed_line(cid, [f"text number {i}", f"another text {i % 97}"])
            line["body"]["dimensions"] = 64
            out.append(line)
        else:
            out.append(chat_line(cid, f"Question {i}: what is {i % 113} squared?", max_tokens=50))
    return out


@pytest.mark.slow
def test_sigkill_mid_batch_then_restart_finishes_exactly_once(
    tmp_path: Path, servers: list[Server]
) -> None:
    scenario = tmp_path / "latency.yaml"
    scenario.write_text(SCENARIO)
    lines = requests()

    first = Server(tmp_path, "first", "--clock", "scaled", "--clock-scale", "1",
                   "--scenario", str(scenario))  # fmt: skip
    servers.append(first)
    upload = first.client.post(
        "/v1/files", files={"file": ("input.jsonl", jsonl(lines), "application/jsonl")}
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["data"]["id"]
    submit = first.client.post(
        "/v1/inference/batch", json={"input_file_url": f"scaigrid://file/{file_id}"}
    )
    assert submit.status_code == 200, submit.text
    batch_id = submit.json()["data"]["id"]

    deadline = time.monotonic() + 20
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = first.batch(batch_id)
        if 0 < seen["completed_count"] < TOTAL:
            break
    else:
        raise AssertionError(f"the batch never got part-way: {seen}")
    first.kill()
    assert seen["status"] == "processing", seen
    assert seen["failed_count"] == 0, seen

    second = Server(tmp_path, "second", "--clock", "frozen", "--scenario", "happy-path")
    servers.append(second)
    resumed = second.batch(batch_id)
    # Everything reported before the kill was committed: nothing is lost, nothing is redone.
    assert resumed["status"] == "processing", resumed
    assert seen["completed_count"] <= resumed["completed_count"] < TOTAL, (seen, resumed)

    advance = second.client.post("/_emulator/clock/advance", json={"seconds": 3600})
    assert advance.status_code == 200, advance.text
    deadline = time.monotonic() + 30
    done: dict[str, Any] = {}
    while time.monotonic() < deadline:
        done = second.batch(batch_id)
        if done["status"] == "completed":
            break
    else:
        raise AssertionError(f"the batch never completed after the restart: {done}")

    assert done["completed_count"] + done["failed_count"] == done["total_count"] == TOTAL
    resp = httpx.get(done["results_url"], timeout=60.0)
    assert resp.status_code == 200, resp.text
    results = [orjson.loads(line) for line in resp.content.splitlines()]
    assert len(results) == TOTAL
    assert [r["custom_id"] for r in results] == [line["custom_id"] for line in lines]
    ok = [r for r in results if r["status"] == "ok"]
    assert len(ok) == done["completed_count"]
    assert len(results) - len(ok) == done["failed_count"] == 0
    for line, r in zip(lines, results, strict=True):
        if line["url"].endswith("/embed"):
            assert r["response"]["object"] == "list", r
            assert len(r["response"]["data"][0]["embedding"]) == 64, r
        else:
            assert r["response"]["object"] == "chat.completion", r
    second.kill()


class Rollback(Exception):
    pass


async def test_reads_never_see_a_write_that_is_not_committed(emu: Harness) -> None:
    """An in-memory store has one connection: a read waits for the write in progress, or a
    status could report progress that a crash before the commit loses."""
    store = emu.core.store
    with pytest.raises(Rollback):
        async with store._write() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'uncommitted')")
            read = asyncio.create_task(store.get_meta("probe"))
            await asyncio.sleep(0)  # the read starts: without the lock it would query now
            await db.execute("SELECT 1")  # ... and its query would run before this one
            assert not read.done()
            raise Rollback
    assert await read is None


async def test_file_store_reads_neither_wait_for_the_writer_nor_see_uncommitted_rows(
    tmp_path: Path,
) -> None:
    """A file store reads through its own connection (WAL): a status read during a long write
    answers at once, with the last committed state."""
    store = Store(str(tmp_path / "emulator.db"))
    await store.open()
    try:
        with pytest.raises(Rollback):
            async with store._write() as db:
                await db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'uncommitted')")
                # Awaited while this task holds the write lock: a read that waited would hang.
                assert await asyncio.wait_for(store.get_meta("probe"), 10) is None
                raise Rollback
        async with store._write() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES ('probe', 'committed')")
        assert await store.get_meta("probe") == "committed"
    finally:
        await store.close()


# --- webhook deliveries ------------------------------------------------------------------------

FROZEN = ("--clock", "frozen", "--clock-start", "2026-01-01T00:00:00Z", "--scenario", "happy-path")


@pytest.mark.slow
def test_sigkill_between_a_failed_attempt_and_its_retry_loses_no_delivery(
    tmp_path: Path, servers: list[Server]
) -> None:
    """The first attempt fails, the server is SIGKILLed before the retry is due, and the restart
    on the same database sends the retry when the clock reaches it: same event, same delivery."""
    with receiver(failing_first(1, status=503)) as (url, got):
        first = Server(tmp_path, "first", *FROZEN)
        servers.append(first)
        hook = first.client.post("/v1/webhooks", json={"url": url, "secret": SECRET})
        assert hook.status_code == 200, hook.text
        hook_id = hook.json()["data"]["id"]
        submit = first.client.post(
            "/v1/inference/batch", json={"input_file_base64": b64([chat_line("r1")])}
        )
        assert submit.status_code == 200, submit.text
        assert first.client.post("/_emulator/clock/advance", json={"seconds": 0}).status_code == 200
        assert len(got.posts) == 1  # answered 503
        [pending] = first.client.get(f"/v1/webhooks/{hook_id}/deliveries").json()["data"]["items"]
        assert (pending["status"], pending["attempts"], pending["status_code"]) == (
            "pending", 1, 503,
        )  # fmt: skip
        first.kill()

        second = Server(tmp_path, "second", *FROZEN)
        servers.append(second)
        advance = second.client.post("/_emulator/clock/advance", json={"seconds": 30})
        assert advance.status_code == 200, advance.text
        assert len(got.posts) == 2
        items = second.client.get(f"/v1/webhooks/{hook_id}/deliveries").json()["data"]["items"]
        second.kill()
    (h1, body1), (h2, body2) = got.posts
    assert body1 == body2
    assert h2["X-ScaiGrid-Signature"] == expected_signature(SECRET, body2)
    assert h1["X-ScaiGrid-Delivery-Id"] == h2["X-ScaiGrid-Delivery-Id"] == pending["id"]
    assert orjson.loads(body2)["payload"]["batch_id"] == submit.json()["data"]["id"]
    assert [(d["status"], d["attempts"]) for d in items] == [("success", 2)]


async def test_a_crash_between_a_final_status_and_its_event_loses_no_event(
    tmp_path: Path,
) -> None:
    """The final status is committed but the process dies before the event is made (the
    outbox is memory): the restart makes it from the store, once."""
    settings = Settings(db=str(tmp_path / "e.db"), clock="frozen", clock_start=START)
    core = Emulator(settings)
    await core.start()
    h = Harness(core, create_app(core=core))
    await register(h, SINK + "late")
    batch = await h.submit([chat_line("r1")])
    await core.worker.run_due()  # final, committed
    core.outbox.clear()  # ... and the crash takes the note that its event is owed
    await h.close()
    await core.stop()
    assert await _events_after_restart(settings) == [batch["id"]]
    assert await _events_after_restart(settings) == []  # made once, not again


async def _events_after_restart(settings: Settings) -> list[str]:
    core = Emulator(settings)
    await core.start()
    h = Harness(core, create_app(core=core))
    try:
        await h.settle()
        return [e["payload"]["batch_id"] for e in events_of(await sink_items(h, "late"))]
    finally:
        await h.close()
        await core.stop()
