"""Deliveries to real HTTP receivers on loopback sockets: the retry schedule against a receiver
that fails its first posts, a receiver that hangs, and the webhook-chaos scenario against a
receiver that verifies signatures. The API stays in-process; only the deliveries use sockets,
and the tests move the emulator clock instead of waiting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import orjson
from conftest import START, Harness, chat_line
from webhook_helpers import deliveries, failing_first, over_sockets, receiver, register, verified

MakeEmu = Callable[..., Awaitable[Harness]]
T0 = int(START.timestamp())


async def test_a_receiver_failing_its_first_posts_gets_the_retries_on_schedule(
    emu: Harness,
) -> None:
    with receiver(failing_first(4, status=503)) as (url, got):
        async with over_sockets(emu):
            hook = await register(emu, url)
            await emu.submit([chat_line("r1")])
            await emu.settle()
            counts = [len(got.posts)]
            # the schedule counts from the first failure: 30 s, 2 min, 10 min, 30 min
            for at in (29, 30, 119, 120, 599, 600, 1799, 1800, 7200):
                await emu.advance(at - (await _elapsed(emu)))
                counts.append(len(got.posts))
    assert counts == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    stamps = [int(h["X-ScaiGrid-Timestamp"]) - T0 for h, _ in got.posts]
    assert stamps == [0, 30, 120, 600, 1800]
    assert all(verified(got))
    assert len({h["X-ScaiGrid-Event-Id"] for h, _ in got.posts}) == 1
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["status_code"]) == ("success", 5, 200)


async def _elapsed(h: Harness) -> float:
    return h.core.clock.now() - T0


async def test_a_hanging_receiver_stalls_neither_batches_nor_the_api(emu: Harness) -> None:
    release = threading.Event()

    def hang(n: int, headers: dict[str, str], body: bytes) -> int:
        release.wait(30)  # until the test lets go
        return 200

    emu.core.sender.timeout = 20.0
    with receiver(hang) as (url, got):
        async with over_sockets(emu):
            hook = await register(emu, url)
            first = await emu.submit([chat_line("r1")])
            await emu.core.worker.run_due()
            due = await emu.core.sender.run_due(wait=False)  # as the background loop does
            assert due is None  # the hanging webhook is being delivered to: no busy loop
            assert await asyncio.to_thread(got.arrived.wait, 10)
            # while the receiver holds the delivery: the API answers, batches run and finish
            second = await emu.submit([chat_line("r2")])
            await emu.core.worker.run_due()
            await emu.core.sender.run_due(wait=False)  # its event, as the background loop makes it
            assert (await emu.batch(second["id"]))["status"] == "completed"
            assert (await emu.client.get("/v1/webhooks")).status_code == 200
            held = await deliveries(emu, hook["id"])
            assert [d["attempts"] for d in held] == [0, 0]  # the first has not come back yet
            release.set()
            await emu.settle()  # waits for the attempt, then sends the second batch's event
    batch_ids = [orjson.loads(body)["payload"]["batch_id"] for _, body in got.posts]
    assert batch_ids == [first["id"], second["id"]]
    assert [d["status"] for d in await deliveries(emu, hook["id"])] == ["success", "success"]


async def test_a_receiver_slower_than_the_deadline_is_a_408(emu: Harness) -> None:
    release = threading.Event()
    emu.core.sender.timeout = 0.2
    with receiver(lambda n, h, b: 200 if release.wait(5) else 200) as (url, got):
        async with over_sockets(emu):
            hook = await register(emu, url)
            await emu.submit([chat_line("r1")])
            await emu.settle()
            release.set()
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["status_code"], d["attempts"]) == ("pending", 408, 1)
    assert d["duration_ms"] >= 200
    assert "0.2 s" in d["error_message"]
