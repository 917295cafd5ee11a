"""Processing on the emulator clock: start delay, per-request latency, concurrency, window expiry.

With latency L and concurrency C, request i finishes at started_at + (i // C + 1) * L, so advancing
the clock by k * L completes exactly C * k requests. Every step below uses advances that are exact
in binary floating point, so the boundaries are exact too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY, Harness, b64, chat_line

from emulator.clock import iso
from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
TENANT = open_tenant_id(KEY)


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def processing(latency: str | None = None, concurrency: int = 1, start_delay: str = "0s") -> str:
    lines = ["processing:", f"  start_delay: {start_delay}", f"  concurrency: {concurrency}"]
    if latency is not None:
        lines.append(f"  latency: {latency}")
    return "\n".join(lines) + "\n"


async def use_tenant_scenario(h: Harness, text: str, tenant: str = TENANT) -> None:
    resp = await h.client.put(f"/_emulator/tenants/{tenant}/scenario", json={"yaml": text})
    assert resp.status_code == 200, resp.text


def lines(n: int) -> list[dict[str, Any]]:
    return [chat_line(f"req-{i}", f"Question number {i}") for i in range(n)]


async def counts(h: Harness, batch_id: str) -> tuple[str, int, int]:
    b = await h.batch(batch_id)
    return b["status"], b["completed_count"], b["failed_count"]


# --- latency and concurrency --------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3, 4, 10, 16])
async def test_advancing_k_latencies_completes_c_times_k_requests(
    emu: Harness, concurrency: int
) -> None:
    latency, n = 10.0, 10
    await use_tenant_scenario(emu, processing("10s", concurrency))
    batch = await emu.submit(lines(n))
    await emu.settle()
    b = await emu.batch(batch["id"])
    assert b["status"] == "processing"
    assert b["started_at"] == b["created_at"]
    assert b["completed_count"] == 0
    rounds = -(-n // concurrency)
    for k in range(1, rounds + 1):
        await emu.advance(latency - 0.5)
        assert (await emu.batch(batch["id"]))["completed_count"] == min(n, concurrency * (k - 1))
        await emu.advance(0.5)
        b = await emu.batch(batch["id"])
        assert b["completed_count"] == min(n, concurrency * k), k
        assert b["failed_count"] == 0
        assert b["status"] == ("completed" if k == rounds else "processing")
    assert b["completed_at"] == iso(ts(b["started_at"]) + rounds * latency)
    results = await emu.results(batch["id"])
    assert [r["custom_id"] for r in results] == [f"req-{i}" for i in range(n)]
    assert all(r["status"] == "ok" for r in results)


async def test_one_jump_of_k_latencies_completes_c_times_k(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("4s", 3))
    batch = await emu.submit(lines(20))
    await emu.settle()
    await emu.advance(4 * 4)
    assert await counts(emu, batch["id"]) == ("processing", 12, 0)
    await emu.advance(3 * 4 - 0.5)
    assert await counts(emu, batch["id"]) == ("processing", 18, 0)
    await emu.advance(0.5)
    assert await counts(emu, batch["id"]) == ("completed", 20, 0)


async def test_a_per_batch_scenario_file_sets_the_schedule(emu: Harness, tmp_path: Path) -> None:
    path = tmp_path / "slowish.yaml"
    path.write_text(processing("1m", 2), encoding="utf-8")
    resp = await emu.client.post(
        "/v1/inference/batch",
        json={"input_file_base64": b64(lines(5))},
        headers={"X-Emulator-Scenario": str(path)},
    )
    assert resp.status_code == 200, resp.text
    batch_id = resp.json()["data"]["id"]
    other = await emu.submit(lines(5))  # no header: the happy path, done at once
    await emu.settle()
    assert await counts(emu, other["id"]) == ("completed", 5, 0)
    assert await counts(emu, batch_id) == ("processing", 0, 0)
    expected = [2, 4, 5]
    for done in expected:
        await emu.advance(60)
        assert (await counts(emu, batch_id))[1] == done
    assert (await emu.batch(batch_id))["status"] == "completed"


async def test_start_delay_holds_the_batch_pending(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("10s", 2, start_delay="30s"))
    batch = await emu.submit(lines(4))
    await emu.settle()
    assert await counts(emu, batch["id"]) == ("pending", 0, 0)
    await emu.advance(29.5)
    b = await emu.batch(batch["id"])
    assert b["status"] == "pending" and b["started_at"] is None
    await emu.advance(0.5)
    b = await emu.batch(batch["id"])
    assert b["status"] == "processing"
    assert b["started_at"] == iso(ts(b["created_at"]) + 30)
    assert b["completed_count"] == 0
    await emu.advance(10)
    assert await counts(emu, batch["id"]) == ("processing", 2, 0)
    await emu.advance(10)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"]) == ("completed", 4)
    assert b["completed_at"] == iso(ts(b["created_at"]) + 50)


async def test_start_delay_without_latency_completes_when_it_passes(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing(start_delay="2m"))
    batch = await emu.submit(lines(3))
    await emu.advance(119.5)
    assert await counts(emu, batch["id"]) == ("pending", 0, 0)
    await emu.advance(0.5)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"]) == ("completed", 3)
    assert b["started_at"] == b["completed_at"] == "2026-01-01T00:02:00.000Z"


async def test_a_batch_keeps_the_scenario_it_was_submitted_under(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("10s", 1))
    batch = await emu.submit(lines(3))
    await use_tenant_scenario(emu, "name: instant\n")
    await emu.advance(10)
    assert await counts(emu, batch["id"]) == ("processing", 1, 0)
    later = await emu.submit(lines(3))
    await emu.settle()
    assert await counts(emu, later["id"]) == ("completed", 3, 0)
    await emu.advance(20)
    assert await counts(emu, batch["id"]) == ("completed", 3, 0)


# --- the completion window ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "n", "ok_count"),
    [
        (processing("25m", 1), 5, 2),  # 25, 50 | 75 > 60
        (processing("20m", 1), 5, 3),  # 20, 40, 60: finishing at expires_at counts
        (processing("20m", 2, start_delay="10m"), 10, 4),  # 30 (2), 50 (4) | 70
        (processing("10s", 1, start_delay="2h"), 3, 0),  # never starts in time
    ],
)
async def test_a_batch_too_slow_for_its_window_fails_partially(
    emu: Harness, scenario: str, n: int, ok_count: int
) -> None:
    await use_tenant_scenario(emu, scenario)
    batch = await emu.submit(lines(n), endpoint_completion_window="1h")
    assert batch["expires_at"] == "2026-01-01T01:00:00.000Z"
    await emu.advance(3599.5)
    status, done, failed = await counts(emu, batch["id"])
    assert status in ("pending", "processing") and failed == 0
    await emu.advance(0.5)
    b = await emu.batch(batch["id"])
    assert b["status"] == "completed"
    assert (b["completed_count"], b["failed_count"]) == (ok_count, n - ok_count)
    assert b["completed_at"] == b["expires_at"]
    results = await emu.results(batch["id"])
    assert [r["custom_id"] for r in results] == [f"req-{i}" for i in range(n)]
    assert [r["status"] for r in results] == ["ok"] * ok_count + ["error"] * (n - ok_count)
    for r in results[ok_count:]:
        assert r["error"]["code"] == "COMPLETION_WINDOW_EXPIRED"
        assert r["error"]["message"]


async def test_window_expiry_in_one_big_jump(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("25m", 1))
    batch = await emu.submit(lines(5), endpoint_completion_window="1h")
    await emu.advance(48 * 3600)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("completed", 2, 3)
    assert b["completed_at"] == b["expires_at"] == "2026-01-01T01:00:00.000Z"


@pytest.mark.parametrize(
    ("window", "requested", "expires"),
    [
        ("30m", "24h", "2026-01-01T00:30:00.000Z"),
        ("48h", "1h", "2026-01-03T00:00:00.000Z"),
        ("90s", "4h", "2026-01-01T00:01:30.000Z"),
    ],
)
async def test_a_scenario_window_replaces_the_requested_one(
    emu: Harness, window: str, requested: str, expires: str
) -> None:
    await use_tenant_scenario(emu, processing("1m", 1) + f"batch:\n  window: {window}\n")
    batch = await emu.submit(lines(3), endpoint_completion_window=requested)
    assert batch["endpoint_completion_window"] == requested
    assert batch["expires_at"] == expires


async def test_a_shortened_window_expires_early(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("10m", 1) + "batch:\n  window: 30m\n")
    batch = await emu.submit(lines(5))
    await emu.advance(3600)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("completed", 3, 2)
    assert b["completed_at"] == b["expires_at"] == "2026-01-01T00:30:00.000Z"


async def test_a_lengthened_window_lets_a_slow_batch_finish(emu: Harness) -> None:
    await use_tenant_scenario(emu, processing("1h", 1) + "batch:\n  window: 48h\n")
    batch = await emu.submit(lines(30), endpoint_completion_window="24h")
    await emu.advance(30 * 3600)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("completed", 30, 0)
    assert b["completed_at"] == "2026-01-02T06:00:00.000Z"


# --- seeded latency distributions ---------------------------------------------------------------

DISTRIBUTIONS = {
    "uniform": "{distribution: uniform, min: 1s, max: 9s}",
    "lognormal": "{distribution: lognormal, median: 4s, sigma: 0.8}",
    "exponential": "{distribution: exponential, mean: 4s}",
    "normal": "{distribution: normal, mean: 5s, stddev: 2s}",
}


async def finish_profile(h: Harness, scenario: str, n: int = 40) -> list[int]:
    """completed_count after each of a fixed series of advances, until the batch is done."""
    await use_tenant_scenario(h, scenario)
    batch = await h.submit(lines(n))
    await h.settle()
    profile = []
    for _ in range(200):
        await h.advance(2)
        status, done, failed = await counts(h, batch["id"])
        assert failed == 0
        profile.append(done)
        if status == "completed":
            return profile
    raise AssertionError(f"batch not done: {profile}")


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
async def test_distribution_latency_replays_with_the_seed(
    make_emu: MakeEmu, distribution: str
) -> None:
    scenario = processing(DISTRIBUTIONS[distribution], 4)
    first = await finish_profile(await make_emu(seed=1), scenario)
    again = await finish_profile(await make_emu(seed=1), scenario)
    other = await finish_profile(await make_emu(seed=2), scenario)
    assert first == again
    assert first != other
    assert first[-1] == other[-1] == 40
    # not the fixed-latency staircase: requests of a round finish at different instants
    assert any(b - a not in (0, 4) for a, b in zip([0, *first], first, strict=False))


async def test_distribution_latency_differs_between_batches_of_one_run(emu: Harness) -> None:
    scenario = processing(DISTRIBUTIONS["uniform"], 4)
    assert await finish_profile(emu, scenario) != await finish_profile(emu, scenario)


async def test_a_scenario_seed_pins_its_draws_whatever_the_emulator_seed(
    make_emu: MakeEmu,
) -> None:
    scenario = "seed: 42\n" + processing(DISTRIBUTIONS["exponential"], 4)
    one = await finish_profile(await make_emu(seed=1), scenario)
    two = await finish_profile(await make_emu(seed=2), scenario)
    assert one == two
    unpinned = await finish_profile(await make_emu(seed=1), scenario.replace("seed: 42\n", ""))
    assert unpinned != one


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_latency_samples_are_non_negative_and_centred(distribution: str) -> None:
    from emulator.scenario.model import parse_scenario
    from emulator.seeded import unit

    scenario = parse_scenario(processing(DISTRIBUTIONS[distribution]), "t.yaml")
    assert scenario.latency is not None
    samples = [scenario.latency.sample(unit("x", i)) for i in range(4000)]
    assert min(samples) >= 0
    mean = sum(samples) / len(samples)
    expected = {"uniform": 5.0, "lognormal": 4.0 * 1.377, "exponential": 4.0, "normal": 5.0}
    assert mean == pytest.approx(expected[distribution], rel=0.1)


async def test_a_batch_that_keeps_coming_due_does_not_hold_up_the_others() -> None:
    """On a moving clock (real or scaled) a pass runs what is due when it starts, batch by
    batch. Were "now" read again at every chunk, a batch whose requests come due faster than a
    chunk is stored would keep the pass until its last request, and every other batch (here a
    three-line one on the happy path) would wait for all of it."""
    from emulator.batch.service import Batches
    from emulator.batch.worker import Worker
    from emulator.clock import Clock
    from emulator.inference.catalogue import load_catalogue
    from emulator.inference.engine import Engine
    from emulator.store import Store

    wall = [ts("2026-01-01T00:00:00Z")]

    def moving() -> float:  # every reading of the clock is 50 ms after the one before
        wall[0] += 0.05
        return wall[0]

    store = Store(":memory:")
    await store.open()
    try:
        clock = Clock("real", wall=moving)
        worker = Worker(store, clock, Engine(0, load_catalogue()))
        batches = Batches(store, clock, worker)
        await batches.files.start()
        await batches.start()
        scenarios = batches.scenarios
        scenarios.set_tenant(TENANT, scenarios.from_yaml("name: fast\n" + processing("1ms")))
        busy = await batches.create_batch(TENANT, {"input_file_base64": b64(
            [chat_line(f"r{i}") for i in range(3000)])})  # fmt: skip
        small = await batches.create_batch("other", {"input_file_base64": b64(
            [chat_line(f"s{i}") for i in range(3)])})  # fmt: skip
        await worker.run_due()  # one pass
        done = await store.get_batch_by_seq(small.seq)
        assert done is not None and done.status == "completed"
        part = await store.get_batch_by_seq(busy.seq)  # the rest is for the passes after
        assert part is not None and part.status == "processing" and part.completed_count < 3000
        while await store.active_batches():
            await worker.run_due()
        finished = await store.get_batch_by_seq(busy.seq)
        assert finished is not None and finished.completed_count == 3000
    finally:
        await store.close()
