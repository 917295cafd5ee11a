"""The bundled scenarios: each loads, and each does what its description promises."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import KEY, START, Harness, assert_error, b64, chat_line, embed_line, jsonl
from webhook_helpers import (
    Received,
    deliveries,
    over_sockets,
    receiver,
    register,
    verified,
    verifying,
)

from emulator import cli
from emulator.api.http import ConnectionDropped
from emulator.scenario.registry import bundled_files, load_scenario_file
from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
FOLDER = Path(__file__).resolve().parent.parent / "scenarios"
FILES = sorted(FOLDER.glob("*.yaml"))
TENANT = open_tenant_id(KEY)
T0 = START.timestamp()
BATCH = "/v1/inference/batch"
CHAT = "/v1/inference/chat"
MODELS = "/v1/models"
CHAT_BODY = chat_line("live", "Hello there")["body"]


def ts(text: str) -> float:
    from emulator.clock import parse_instant

    return parse_instant(text).timestamp()


async def submit(h: Harness, lines: list[Any], scenario: str, **body: Any) -> dict[str, Any]:
    resp = await h.client.post(
        BATCH,
        json={"input_file_base64": b64(lines), **body},
        headers={"X-Emulator-Scenario": scenario},
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


async def use(h: Harness, name: str, tenant: str = TENANT) -> None:
    resp = await h.client.put(f"/_emulator/tenants/{tenant}/scenario", json={"name": name})
    assert resp.status_code == 200, resp.text


def chats(n: int) -> list[dict[str, Any]]:
    return [chat_line(f"req-{i}", f"Question {i}") for i in range(n)]


# --- every file loads ---------------------------------------------------------------------------


def test_every_bundled_file_is_found() -> None:
    assert FILES, "no bundled scenarios"
    assert sorted(bundled_files()) == [p.stem for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_bundled_scenario_loads_and_validates(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = load_scenario_file(path)
    assert scenario.name == path.stem
    assert len(scenario.description) > 40
    assert cli.main(["scenario", "check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


def test_the_documented_bundled_names_are_there() -> None:
    documented = {
        "happy-path", "realistic-latency", "flaky-backend", "quota-exhausted", "slow-processing",
        "cancellation", "input-parse-failure", "rate-limited", "api-outage", "webhook-chaos",
        "network-chaos",
    }  # fmt: skip
    assert documented <= set(bundled_files())


# --- happy-path ---------------------------------------------------------------------------------


async def test_happy_path_completes_everything_at_once(emu: Harness) -> None:
    scenario = load_scenario_file(FOLDER / "happy-path.yaml")
    assert not (scenario.faults or scenario.api_faults or scenario.limits or scenario.rate_limit)
    lines = [*chats(3), embed_line("e-1"), chat_line("big", model="openai/gpt-4o")]
    batch = await submit(emu, lines, "happy-path")
    await emu.settle()
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("completed", 5, 0)
    assert b["created_at"] == b["started_at"] == b["completed_at"] == "2026-01-01T00:00:00.000Z"
    assert all(r["status"] == "ok" for r in await emu.results(batch["id"]))
    resp = await emu.client.get(MODELS)
    assert resp.status_code == 200 and "x-scaigrid-ratelimit-limit" not in resp.headers


async def test_happy_path_is_the_default(emu: Harness) -> None:
    resp = await emu.client.get("/_emulator/scenario")
    assert resp.json()["data"]["name"] == "happy-path"


# --- realistic-latency --------------------------------------------------------------------------


async def test_realistic_latency_queues_a_minute_then_runs_as_scheduled(emu: Harness) -> None:
    n = 1000
    batch = await submit(emu, chats(n), "realistic-latency")
    await emu.advance(59.5)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["started_at"]) == ("pending", None)
    await emu.advance(0.5)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"]) == ("processing", 0)
    assert b["started_at"] == "2026-01-01T00:01:00.000Z"

    scenario = load_scenario_file(FOLDER / "realistic-latency.yaml")
    offsets = scenario.plan(emu.core.settings.seed, batch["id"]).schedule(n)
    assert offsets[:8] != [offsets[0]] * 8  # each request draws its own latency
    elapsed = 0.0
    seen = []
    while b["status"] == "processing":
        await emu.advance(10)
        elapsed += 10
        b = await emu.batch(batch["id"])
        assert b["completed_count"] == sum(1 for o in offsets if o <= elapsed)
        seen.append(b["completed_count"])
    assert seen == sorted(seen) and len(set(seen)) > 5  # progress, a chunk at a time
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("completed", n, 0)
    took = ts(b["completed_at"]) - ts(b["started_at"])
    assert took == pytest.approx(max(offsets), abs=0.001)  # ms on the wire
    assert 90 <= took <= 150, took  # "about 2 minutes"


# --- flaky-backend ------------------------------------------------------------------------------


def flaky_lines(n: int) -> list[dict[str, Any]]:
    return [
        chat_line(f"req-{i}", f"Question {i}", model="openai/gpt-4o" if i % 10 == 3 else
                  "scailabs/poolnoodle-omni")
        for i in range(n)
    ]  # fmt: skip


async def test_flaky_backend_in_a_batch(emu: Harness) -> None:
    n = 1000
    batch = await submit(emu, flaky_lines(n), "flaky-backend")
    await emu.settle()
    b = await emu.batch(batch["id"])
    assert b["status"] == "completed"
    results = await emu.results(batch["id"])
    codes = [r["error"]["code"] if r["status"] == "error" else None for r in results]
    for i, code in enumerate(codes):
        if i % 10 == 3:
            assert code == "MODEL_UNAVAILABLE", i
        elif (i + 1) % 25 == 0:
            assert code == "BACKEND_TIMEOUT", i
        else:
            assert code in (None, "BACKEND_ERROR"), i
    rest = [c for i, c in enumerate(codes) if i % 10 != 3 and (i + 1) % 25 != 0]
    share = rest.count("BACKEND_ERROR") / len(rest)
    assert 0.07 <= share <= 0.13, share
    assert b["failed_count"] == sum(c is not None for c in codes)
    assert b["completed_count"] == codes.count(None)


async def test_flaky_backend_live_calls_see_the_faults(emu: Harness) -> None:
    await use(emu, "flaky-backend")
    statuses = []
    for i in range(1, 201):
        resp = await emu.client.post(CHAT, json=CHAT_BODY)
        statuses.append(resp.status_code)
        if i % 25 == 0:
            assert_error(resp, 504, "BACKEND_TIMEOUT")
        elif resp.status_code != 200:
            assert_error(resp, 502, "BACKEND_ERROR")
    assert 10 <= statuses.count(502) <= 32, statuses.count(502)
    big = {**CHAT_BODY, "model": "openai/gpt-4o"}
    assert_error(await emu.client.post(CHAT, json=big), 503, "MODEL_UNAVAILABLE")


# --- quota-exhausted ----------------------------------------------------------------------------


async def test_quota_exhausted_refuses_submits_but_not_live_inference(emu: Harness) -> None:
    await use(emu, "quota-exhausted")
    for _ in range(2):
        resp = await emu.client.post(BATCH, json={"input_file_base64": b64(chats(1))})
        err = assert_error(resp, 429, "QUOTA_EXCEEDED")
        assert "retry_after" not in err and "retry-after" not in resp.headers
    assert (await emu.client.post(CHAT, json=CHAT_BODY)).status_code == 200
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []


async def test_quota_exhausted_as_the_global_scenario(make_emu: MakeEmu) -> None:
    h = await make_emu(scenario="quota-exhausted")
    assert_error(await h.client.post(BATCH, json={"input_file_base64": b64(chats(1))}), 429,
             "QUOTA_EXCEEDED")  # fmt: skip
    assert (await h.client.post(CHAT, json=CHAT_BODY)).status_code == 200


# --- slow-processing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("window", "n", "ok_count"), [("1h", 10, 3), ("24h", 150, 141)])
async def test_slow_processing_expires_the_window(
    emu: Harness, window: str, n: int, ok_count: int
) -> None:
    batch = await submit(emu, chats(n), "slow-processing", endpoint_completion_window=window)
    await emu.advance(30 * 60 - 0.5)
    assert (await emu.batch(batch["id"]))["status"] == "pending"
    await emu.advance(0.5 + 10 * 60)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"]) == ("processing", 1)
    await emu.advance(48 * 3600)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == (
        "completed", ok_count, n - ok_count,
    )  # fmt: skip
    assert b["completed_at"] == b["expires_at"]
    results = await emu.results(batch["id"])
    assert [r["status"] for r in results] == ["ok"] * ok_count + ["error"] * (n - ok_count)
    assert {r["error"]["code"] for r in results[ok_count:]} == {"COMPLETION_WINDOW_EXPIRED"}


# --- cancellation -------------------------------------------------------------------------------


async def test_cancellation_after_five_requests(emu: Harness) -> None:
    batch = await submit(emu, chats(12), "cancellation")
    await emu.settle()
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("cancelled", 5, 7)
    assert b["cancelled_at"] and b["results_url"]
    results = await emu.results(batch["id"])
    assert [r["status"] for r in results] == ["ok"] * 5 + ["error"] * 7
    assert {r["error"]["code"] for r in results[5:]} == {"BATCH_CANCELLED"}


# --- input-parse-failure ------------------------------------------------------------------------


async def test_input_parse_failure(emu: Harness) -> None:
    batch = await submit(emu, chats(3), "input-parse-failure")
    await emu.settle()
    b = await emu.batch(batch["id"])
    assert b["status"] == "failed" and b["failed_at"]
    assert b["error"]["code"] == "INPUT_PARSE_ERROR"
    assert b["error"]["details"][0]["line"] == 1
    assert b["results_url"] is None and b["completed_count"] == 0


# --- rate-limited -------------------------------------------------------------------------------


async def test_rate_limited_sixth_call_in_a_minute(emu: Harness) -> None:
    await use(emu, "rate-limited")
    calls = [
        emu.client.get(MODELS),
        emu.client.post(CHAT, json=CHAT_BODY),
        emu.client.get(BATCH),
        emu.client.get("/v1/files"),
        emu.client.post("/v1/inference/embed", json=embed_line("e")["body"]),
    ]
    for remaining, call in zip(range(4, -1, -1), calls, strict=True):
        resp = await call
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-scaigrid-ratelimit-limit"] == "5"
        assert resp.headers["x-scaigrid-ratelimit-remaining"] == str(remaining)
        assert resp.headers["x-scaigrid-ratelimit-reset"] == str(int(T0) + 60)
    await emu.advance(20)
    resp = await emu.client.get(MODELS)
    err = assert_error(resp, 429, "RATE_LIMITED")
    assert err["retry_after"] == 40 and resp.headers["retry-after"] == "40"
    assert resp.headers["x-scaigrid-ratelimit-remaining"] == "0"
    await emu.advance(40)
    assert (await emu.client.get(MODELS)).status_code == 200


# --- api-outage ---------------------------------------------------------------------------------


async def test_api_outage_then_failing_submits_then_recovery(emu: Harness) -> None:
    """The first 3 calls of any kind answer 503; the 4th and 5th batch submissions (each rule
    counts the calls to its routes, those refused in the outage too) answer 502."""
    await use(emu, "api-outage")
    for call in (
        emu.client.get(MODELS),
        emu.client.get(BATCH),
        emu.client.post(CHAT, json=CHAT_BODY),
    ):
        resp = await call
        err = assert_error(resp, 503, "MODEL_UNAVAILABLE")
        assert err["retry_after"] == 30 and resp.headers["retry-after"] == "30"
    assert (await emu.client.get(MODELS)).status_code == 200
    body = {"input_file_base64": b64(chats(1))}
    statuses = [(await emu.client.post(BATCH, json=body)).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 502, 502, 200]
    resp = await emu.client.post(BATCH, json=body)
    assert resp.status_code == 200, resp.text
    assert (await emu.client.get(MODELS)).status_code == 200


async def test_api_outage_when_the_first_calls_are_submits(emu: Harness) -> None:
    await use(emu, "api-outage")
    body = {"input_file_base64": b64(chats(1))}
    statuses = [(await emu.client.post(BATCH, json=body)).status_code for _ in range(6)]
    assert statuses == [503, 503, 503, 502, 502, 200]


async def test_api_outage_counts_each_tenant_on_its_own(make_emu: MakeEmu) -> None:
    h = await make_emu(scenario="api-outage")
    async with h.client_for("sgk_other_" + "o" * 32) as other:
        assert [(await h.client.get(MODELS)).status_code for _ in range(4)] == [503] * 3 + [200]
        assert [(await other.get(MODELS)).status_code for _ in range(4)] == [503] * 3 + [200]


# --- webhook-chaos ---------------------------------------------------------------------------


T0_INT = int(T0)


async def chaos_run(h: Harness) -> tuple[Received, list[str], list[dict[str, Any]]]:
    """Twelve batches under webhook-chaos, to a receiver that refuses bad signatures; the clock
    moves in 15 s steps through the first ten minutes, then two hours."""
    resp = await h.client.put(
        f"/_emulator/tenants/{open_tenant_id(h.api_key)}/scenario", json={"name": "webhook-chaos"}
    )
    assert resp.status_code == 200
    with receiver(verifying()) as (url, got):
        async with over_sockets(h):
            hook = await register(h, url)
            ids = [(await h.submit([chat_line(f"r{i}")]))["id"] for i in range(12)]
            await h.settle()
            for _ in range(40):
                await h.advance(15)
            await h.advance(7200)
    return got, ids, await deliveries(h, hook["id"], limit=100)


async def test_webhook_chaos_does_what_it_says(make_emu: MakeEmu) -> None:
    got, batch_ids, listed = await chaos_run(await make_emu())
    ok = verified(got)
    events = [orjson.loads(body) for _, body in got.posts]
    good = [e for e, v in zip(events, ok, strict=True) if v]

    # at least once: every batch's event arrived correctly signed (nothing lost)
    assert {e["payload"]["batch_id"] for e in good} == set(batch_ids)
    # a third or so duplicated: two deliveries of one event, both succeed
    per_event: dict[str, int] = {}
    for d in listed:
        per_event[d["event_id"]] = per_event.get(d["event_id"], 0) + 1
    assert sorted(set(per_event.values())) == [1, 2]
    assert all(d["status"] == "success" for d in listed)
    # the first attempt of every delivery failed before reaching the receiver
    assert all(d["attempts"] >= 2 for d in listed)
    assert len(got.posts) == sum(d["attempts"] - 1 for d in listed)
    # some attempts carried a wrong signature; each was refused, and retried
    assert 0 < ok.count(False) < len(ok) // 2
    # some deliveries waited 1-5 minutes before their first attempt (then the 30 s retry)
    first_sent: dict[str, int] = {}
    for headers, _ in got.posts:
        first_sent.setdefault(
            headers["X-ScaiGrid-Delivery-Id"], int(headers["X-ScaiGrid-Timestamp"])
        )
    waits = sorted(t - T0 for t in first_sent.values())
    assert waits[0] == 30 and any(90 <= w <= 330 for w in waits)
    # reordered: the events do not arrive in the order the batches finished
    arrival = list(dict.fromkeys(e["payload"]["batch_id"] for e in good))
    assert arrival != batch_ids and sorted(arrival) == sorted(batch_ids)


async def test_webhook_chaos_replays_identically(make_emu: MakeEmu) -> None:
    first, _, _ = await chaos_run(await make_emu())
    second, _, _ = await chaos_run(await make_emu())
    seen = [[(h["X-ScaiGrid-Delivery-Id"], h["X-ScaiGrid-Signature"]) for h, _ in r.posts]
            for r in (first, second)]  # fmt: skip
    assert seen[0] == seen[1]


# --- network-chaos ------------------------------------------------------------------------------


def answered(h: Harness, path: str) -> list[tuple[int, int]]:
    """(status, body bytes sent) of each call to `path`, from the journal."""
    return [(e["status"], e["response"]["size"]) for e in h.core.journal.entries(path=path)]


async def test_network_chaos_submissions_reset_then_hang_then_go(emu: Harness) -> None:
    await use(emu, "network-chaos")
    body = {"input_file_base64": b64(chats(3))}
    with pytest.raises(ConnectionDropped, match="reset"):
        await emu.client.post(BATCH, json=body)
    started = time.monotonic()
    hung = await emu.client.post(BATCH, json=body)
    assert time.monotonic() - started >= 0.5 and hung.status_code == 200  # real time, then made
    assert emu.core.clock.now() == T0  # the frozen clock did not move
    assert (await emu.client.post(BATCH, json=body)).status_code == 200
    assert len((await emu.client.get(BATCH)).json()["data"]["items"]) == 2  # the reset one: none

    upload = await emu.client.post(
        "/oai/v1/files", files={"file": ("in.jsonl", jsonl(chats(3)))}, data={"purpose": "batch"}
    )
    oai = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions",
           "completion_window": "24h"}  # fmt: skip
    with pytest.raises(ConnectionDropped, match="reset"):
        await emu.client.post("/oai/v1/batches", json=oai)
    started = time.monotonic()
    assert (await emu.client.post("/oai/v1/batches", json=oai)).status_code == 200
    assert time.monotonic() - started >= 0.5
    assert [s for s, _ in answered(emu, "/oai/v1/batches")] == [0, 200]


async def test_network_chaos_downloads_cut_then_dribbled(emu: Harness) -> None:
    batch = await submit_plain(emu, chats(30))
    await emu.advance(3600)
    await use(emu, "network-chaos")
    url = (await emu.batch(batch))["results_url"]
    output = (await emu.client.get(f"/oai/v1/batches/{batch}")).json()["output_file_id"]
    content = f"/oai/v1/files/{output}/content"
    route = url.removeprefix("http://emulator.test").split("?")[0]
    async with emu.client_for(None) as anon:
        for get, path, where in ((anon.get, url, route), (emu.client.get, content, content)):
            with pytest.raises(ConnectionDropped, match="closed"):
                await get(path)
            started = time.monotonic()
            whole = (await get(path)).content
            assert len(whole.splitlines()) == 30 and len(whole) > 2048
            assert time.monotonic() - started >= 0.01 * (len(whole) // 1024)  # dribbled
            assert (await get(path)).content == whole
            assert answered(emu, where) == [(200, 1024), (200, len(whole)), (200, len(whole))]


async def test_network_chaos_cuts_the_first_chat_stream_and_spoils_a_models_list(
    emu: Harness,
) -> None:
    await use(emu, "network-chaos")
    with pytest.raises(ConnectionDropped, match="closed"):
        await emu.client.post(CHAT, json={**CHAT_BODY, "stream": True})
    sent = emu.core.journal.entries(path=CHAT)[0]["response"]["body"]
    assert sent.count("\n\n") == 2 and "[DONE]" not in sent
    whole = await emu.client.post(CHAT, json={**CHAT_BODY, "stream": True})
    assert whole.text.endswith("data: [DONE]\n\n")
    # the OpenAI chat's first call does not stream: the rule's one call passes it whole
    oai_chat = "/oai/v1/chat/completions"
    assert (await emu.client.post(oai_chat, json=CHAT_BODY)).json()["object"] == "chat.completion"
    streamed = await emu.client.post(oai_chat, json={**CHAT_BODY, "stream": True})
    assert streamed.text.endswith("data: [DONE]\n\n")

    spoilt = await emu.client.get("/oai/v1/models")  # "/v1/models" covers both surfaces
    assert spoilt.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(spoilt.content)
    assert (await emu.client.get(MODELS)).json()["status"] == "ok"


async def submit_plain(h: Harness, lines: list[Any]) -> str:
    resp = await h.client.post(BATCH, json={"input_file_base64": b64(lines)})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["data"]["id"])
