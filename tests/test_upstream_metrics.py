"""`/metrics` with an upstream: calls by route and outcome, the calls in flight, replay hits and
misses, and recordings written, each counted once where it is decided, whichever path (a live
call, a streamed chat, a batch line) the request came by."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from conftest import CHAT, Harness, assert_error, chat_line, embed_line
from standin_upstream import StandIn

MODEL = "scailabs/poolnoodle-omni"
EMBED = "/v1/inference/embed"
#: how long the emulator waits for the stand-in before BACKEND_TIMEOUT (its `fail:slow` hangs)
TIMEOUT = 0.3
FAMILIES = (
    ("upstream_calls_total", "counter"),
    ("upstream_calls_in_flight", "gauge"),
    ("upstream_replays_total", "counter"),
    ("upstream_recordings_total", "counter"),
)

Make = Callable[..., Awaitable[Harness]]


def chat(content: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}]}


async def upstream_lines(h: Harness) -> list[str]:
    """The upstream families' lines of `/metrics`, HELP and TYPE left out, in their order."""
    async with h.client_for(None) as anon:
        text = (await anon.get("/metrics")).text
    for name, kind in FAMILIES:
        assert f"# HELP scaigrid_emulator_{name} " in text
        assert f"# TYPE scaigrid_emulator_{name} {kind}\n" in text
    prefix = "scaigrid_emulator_upstream_"
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


def calls(route: str, outcome: str, n: int) -> str:
    return f'calls_total{{route="{route}",outcome="{outcome}"}} {n}'


def quiet(in_flight: int = 0, hit: int = 0, miss: int = 0, recordings: int = 0) -> list[str]:
    """The families every emulator shows, with these values."""
    return [
        f"calls_in_flight {in_flight}",
        f'replays_total{{outcome="hit"}} {hit}',
        f'replays_total{{outcome="miss"}} {miss}',
        f"recordings_total {recordings}",
    ]


async def test_without_an_upstream_the_families_are_there_at_zero(emu: Harness) -> None:
    assert await upstream_lines(emu) == quiet()


async def test_each_outcome_is_counted_once_by_route_live_and_batch_alike(
    make_emu: Make, standin: StandIn
) -> None:
    h = await make_emu(upstream=standin.url, upstream_timeout=TIMEOUT)
    live = ["ok", "fail:429", "fail:slow", "fail:500", "fail:drop", "fail:garbage", "fail:shape"]
    for text in live:
        await h.client.post(CHAT, json=chat(text))
    streamed = await h.client.post(CHAT, json={**chat("streamed"), "stream": True})
    assert streamed.status_code == 200
    await h.client.post("/oai/v1/chat/completions", json=chat("fail:500"))
    assert_error(await h.client.post(CHAT, json={"model": MODEL}), 422, "VALIDATION_ERROR")
    lines = [chat_line("a", "ok"), chat_line("b", "fail:shape"), embed_line("e", ["x"])]
    await h.submit(lines)
    await h.settle()
    assert standin.calls == 12  # the bad body never left
    assert await upstream_lines(h) == [
        calls(CHAT, "error", 3),  # two 500s and a dropped connection
        calls(CHAT, "ok", 3),
        calls(CHAT, "rate_limited", 1),
        calls(CHAT, "shape_mismatch", 3),
        calls(CHAT, "timeout", 1),
        calls(EMBED, "ok", 1),
        *quiet(),
    ]


async def test_a_scenario_fault_is_not_an_upstream_call(make_emu: Make, standin: StandIn) -> None:
    h = await make_emu(upstream=standin.url)
    rules = "{faults: [{match: {content: '*doomed*'}, error: {code: MODEL_UNAVAILABLE}}]}"
    assert (await h.client.put("/_emulator/scenario", json={"name": rules})).status_code == 200
    assert_error(await h.client.post(CHAT, json=chat("doomed")), 503, "MODEL_UNAVAILABLE")
    assert await upstream_lines(h) == quiet()


async def test_calls_in_flight_are_those_holding_a_turn(make_emu: Make, standin: StandIn) -> None:
    h = await make_emu(upstream=standin.url, upstream_concurrency=2)
    standin.hold()
    asked = [asyncio.create_task(h.client.post(CHAT, json=chat(f"q{i}"))) for i in range(3)]
    await standin.until_parked(2)
    assert (await upstream_lines(h))[0] == "calls_in_flight 2"  # the third waits for a turn
    standin.release()
    assert [r.status_code for r in await asyncio.gather(*asked)] == [200] * 3
    assert await upstream_lines(h) == [calls(CHAT, "ok", 3), *quiet()]


async def test_recordings_then_replay_hits_and_misses(
    make_emu: Make, standin: StandIn, tmp_path: Path
) -> None:
    tape = tmp_path / "tape"
    recording = await make_emu(upstream=standin.url, record=tape)
    for text in ("one", "two", "fail:429"):
        await recording.client.post(CHAT, json=chat(text))
    assert await upstream_lines(recording) == [
        calls(CHAT, "ok", 2),
        calls(CHAT, "rate_limited", 1),
        *quiet(recordings=3),
    ]
    replaying = await make_emu(replay=tape)
    for text in ("one", "two", "fail:429", "one"):  # the recorded 429 is replayed, not called
        await replaying.client.post(CHAT, json=chat(text))
    assert_error(await replaying.client.post(CHAT, json=chat("new")), 502, "REPLAY_MISS")
    assert await upstream_lines(replaying) == quiet(hit=4, miss=1)
    unreadable = next(tape.iterdir())
    unreadable.write_text("{")
    misses = 0
    for text in ("one", "two", "fail:429"):
        resp = await replaying.client.post(CHAT, json=chat(text))
        misses += resp.status_code == 502 and resp.json()["error"]["code"] == "REPLAY_MISS"
    assert misses == 1
    assert await upstream_lines(replaying) == quiet(hit=6, miss=2)


async def test_a_miss_sent_upstream_is_a_call_and_a_recording(
    make_emu: Make, standin: StandIn, tmp_path: Path
) -> None:
    tape = tmp_path / "tape"
    tape.mkdir()
    growing = await make_emu(upstream=standin.url, replay=tape, record=tape, replay_miss="upstream")
    for text in ("one", "one", "fail:500"):
        await growing.client.post(CHAT, json=chat(text))
    assert standin.calls == 2
    assert await upstream_lines(growing) == [
        calls(CHAT, "error", 1),
        calls(CHAT, "ok", 1),
        *quiet(hit=1, miss=2, recordings=2),
    ]
    faking = await make_emu(replay=tape, replay_miss="fake")
    answer = (await faking.client.post(CHAT, json=chat("unseen"))).json()["data"]
    assert not answer["choices"][0]["message"]["content"].startswith("echo:")
    assert await upstream_lines(faking) == quiet(miss=1)
