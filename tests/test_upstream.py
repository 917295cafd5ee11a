"""`--upstream`: live calls and batch lines get their content from an OpenAI-compatible server
(here a misbehaving stand-in on loopback), while ids, `created`, scenarios and pricing stay the
emulator's; every upstream failure is that request's error, with a clear code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from conftest import CHAT, KEY, START, Harness, assert_error, b64, chat_line, embed_line
from standin_upstream import StandIn

from emulator.batch.pricing import discounted, live_cost
from emulator.endpoints import EMBED
from emulator.errors import ConfigError, UpstreamShapeMismatch
from emulator.settings import Settings, build_settings
from emulator.upstream.answers import error_of, translate
from emulator.upstream.client import Reply
from emulator.upstream.service import Upstream

MODEL = "scailabs/poolnoodle-omni"
EMBEDDER = "openai/text-embedding-3-small"
UPSTREAM_KEY = "upstream-secret-key"
T0 = int(START.timestamp())
#: how long the emulator waits for the stand-in before BACKEND_TIMEOUT (its `fail:slow` hangs)
TIMEOUT = 0.3

Make = Callable[..., Awaitable[Harness]]


async def fronted(make_emu: Make, standin: StandIn, **settings: Any) -> Harness:
    """An emulator whose upstream is the stand-in."""
    return await make_emu(
        upstream=standin.url,
        upstream_key=UPSTREAM_KEY,
        upstream_timeout=TIMEOUT,
        upstream_model_map=(("*", "small-local-model"),),
        **settings,
    )


def chat(content: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}]}


# --- live -----------------------------------------------------------------------------------------


async def test_a_live_chat_gets_the_upstreams_text_and_the_emulators_id(
    make_emu: Make, standin: StandIn
) -> None:
    h = await fronted(make_emu, standin)
    resp = await h.client.post(CHAT, json=chat("hello there"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()["data"]
    assert answer["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "echo: hello there"},
         "finish_reason": "stop"}
    ]  # fmt: skip
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    assert answer["model"] == MODEL and answer["created"] == T0
    assert answer["id"].startswith("chatcmpl-") and answer["id"] != "upstream-id"
    [seen] = standin.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.body == {**chat("hello there"), "model": "small-local-model"}


async def test_without_usage_the_emulators_estimate_is_used(
    make_emu: Make, standin: StandIn
) -> None:
    h = await fronted(make_emu, standin)
    answer = (await h.client.post(CHAT, json=chat("nousage please"))).json()["data"]
    # the engine's formula: 3 + (4 + ceil(14 / 4)) prompt, ceil(len("echo: nousage please") / 4)
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    answer = (await h.client.post(CHAT, json=chat("nousage, and a longer one"))).json()["data"]
    assert answer["usage"] == {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}


@pytest.mark.parametrize(
    ("text", "status", "code", "said"),
    [
        ("fail:500", 502, "BACKEND_ERROR", "The upstream answered 500: the model is overloaded"),
        ("fail:429", 429, "BACKEND_RATE_LIMITED", "The upstream answered 429: slow down"),
        ("fail:slow", 504, "BACKEND_TIMEOUT", f"did not answer within {TIMEOUT:g} s"),
        ("fail:drop", 502, "BACKEND_ERROR", "The upstream connection failed"),
        ("fail:garbage", 502, "UPSTREAM_SHAPE_MISMATCH", "is not a /v1/inference/chat answer"),
        ("fail:shape", 502, "UPSTREAM_SHAPE_MISMATCH", "is not a /v1/inference/chat answer"),
    ],
)
async def test_each_upstream_failure_is_a_clear_live_error(
    make_emu: Make, standin: StandIn, text: str, status: int, code: str, said: str
) -> None:
    h = await fronted(make_emu, standin)
    error = assert_error(await h.client.post(CHAT, json=chat(text)), status, code)
    assert said in error["message"]
    if code == "BACKEND_RATE_LIMITED":
        assert error["retry_after"] == 7


async def test_the_emulators_checks_come_first(make_emu: Make, standin: StandIn) -> None:
    h = await fronted(make_emu, standin)
    assert_error(await h.client.post(CHAT, json={"model": MODEL}), 422, "VALIDATION_ERROR")
    missing = {**chat("hi"), "model": "acme/none"}
    assert_error(await h.client.post(CHAT, json=missing), 404, "MODEL_NOT_FOUND")
    assert standin.calls == 0


async def test_the_fast_path_and_the_general_path_answer_alike(
    make_emu: Make, standin: StandIn
) -> None:
    """A native chat goes the fast path (which awaits the upstream itself); the OpenAI route goes
    the general path; a streamed chat is the upstream's whole answer cut into chunks."""
    h = await fronted(make_emu, standin)
    fast = (await h.client.post(CHAT, json=chat("same"))).json()["data"]
    general = (await h.client.post("/oai/v1/chat/completions", json=chat("same"))).json()
    assert general["choices"][0]["message"]["content"] == "echo: same"
    assert general["usage"] == fast["usage"]
    streamed = await h.client.post(
        CHAT, json={**chat("same"), "stream": True, "stream_options": {"include_usage": True}}
    )
    events = [
        orjson.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")
    ]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "echo: same" and events[-1]["usage"] == fast["usage"]
    assert [s.body.get("stream") for s in standin.seen] == [None, None, None]  # never streamed
    failed = await h.client.post("/oai/v1/chat/completions", json=chat("fail:500"))
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "backend_error"


async def test_with_an_upstream_the_fast_path_answers_byte_for_byte_as_the_general_path(
    make_emu: Make, standin: StandIn
) -> None:
    """Two fronts of the same stand-in get the same requests, one through the app (the fast
    path, which awaits the upstream itself) and one through `app.general`: statuses, headers,
    bodies and journals agree, the upstream's failures included."""
    fast, general = await fronted(make_emu, standin), await fronted(make_emu, standin)
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    bodies = [chat(t) for t in ("one", "one", "fail:500", "fail:429", "fail:garbage", "nousage")]
    exchanges = [(CHAT, auth, orjson.dumps(b)) for b in bodies]
    exchanges += [
        ("/v1/inference/generate", auth, orjson.dumps({"model": MODEL, "prompt": "p"})),
        ("/v1/inference/embed", auth, orjson.dumps({"model": EMBEDDER, "input": ["a"]})),
        (CHAT, auth, orjson.dumps({**chat("streamed"), "stream": True})),
        (CHAT, auth, orjson.dumps({"model": MODEL})),
        (CHAT, {}, orjson.dumps(chat("no key"))),
    ]
    taken = []
    takes = fast.app.fast.takes

    def counting_takes(scope: Any) -> bool:
        taken.append(takes(scope))
        return taken[-1]

    fast.app.fast.takes = counting_takes  # type: ignore[method-assign]
    got, want = [], []
    for replies, app in ((got, fast.app), (want, general.app.general)):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as c:
            for path, headers, body in exchanges:
                resp = await c.post(path, headers=headers, content=body)
                replies.append((resp.status_code, resp.headers.raw, resp.content))
    assert got == want
    assert {status for status, _, _ in got} == {200, 401, 422, 429, 502}
    assert taken.count(True) == len(exchanges)
    assert fast.core.journal.entries() == general.core.journal.entries()
    assert standin.calls == 2 * 9  # all but the bad body and the missing key, from each front


async def test_a_scenario_fault_or_canned_text_never_reaches_the_upstream(
    make_emu: Make, standin: StandIn
) -> None:
    h = await fronted(make_emu, standin)
    rules = (
        "{faults: [{match: {content: '*doomed*'}, error: {code: MODEL_UNAVAILABLE}}],"
        " canned: [{match: {content: '*weather*'}, response: 'Sunny.'}]}"
    )
    resp = await h.client.put("/_emulator/scenario", json={"name": rules})
    assert resp.status_code == 200, resp.text
    assert_error(await h.client.post(CHAT, json=chat("doomed")), 503, "MODEL_UNAVAILABLE")
    canned = (await h.client.post(CHAT, json=chat("the weather?"))).json()["data"]
    assert canned["choices"][0]["message"]["content"] == "Sunny."
    assert standin.calls == 0
    relayed = (await h.client.post(CHAT, json=chat("anything else"))).json()["data"]
    assert relayed["choices"][0]["message"]["content"] == "echo: anything else"


# --- batches --------------------------------------------------------------------------------------


async def test_a_batch_gets_upstream_content_and_per_line_error_records(
    make_emu: Make, standin: StandIn
) -> None:
    h = await fronted(make_emu, standin)
    texts = ["one", "fail:500", "two", "fail:429", "fail:slow", "fail:drop", "fail:shape"]
    lines = [chat_line(f"r{i}", text) for i, text in enumerate(texts)]
    batch = await h.submit([*lines, embed_line("emb", ["x", "y"])])
    await h.settle()
    status = await h.batch(batch["id"])
    assert status["status"] == "completed"
    assert (status["completed_count"], status["failed_count"]) == (3, 5)
    results = {r["custom_id"]: r for r in await h.results(batch["id"])}
    assert results["r0"]["response"]["choices"][0]["message"]["content"] == "echo: one"
    assert results["r0"]["response"]["created"] == T0
    assert results["emb"]["response"]["data"][1]["embedding"] == [0.5, -0.25]
    codes = {cid: r["error"]["code"] for cid, r in results.items() if r["status"] == "error"}
    assert codes == {
        "r1": "BACKEND_ERROR", "r3": "BACKEND_RATE_LIMITED", "r4": "BACKEND_TIMEOUT",
        "r5": "BACKEND_ERROR", "r6": "UPSTREAM_SHAPE_MISMATCH",
    }  # fmt: skip
    # priced from the upstream's usage (11 in, 5 out), at live rates less the window's discount
    model = h.core.catalogue.get(MODEL)
    embedder = h.core.catalogue.get("openai/text-embedding-3-small")
    live = 2 * live_cost(model, 11, 5) + live_cost(embedder, 11, 0)
    amount = 2 * discounted(model, "24h", live_cost(model, 11, 5)) + discounted(
        embedder, "24h", live_cost(embedder, 11, 0)
    )
    assert status["usage"] == {"input_tokens": 33, "output_tokens": 10, "total_tokens": 43}
    cents = Decimal("0.000001")
    assert Decimal(status["cost"]["live"]) == live.quantize(cents)
    assert Decimal(status["cost"]["amount"]) == amount.quantize(cents)
    assert live > 0


async def test_lines_a_scenario_fails_never_reach_the_upstream(
    make_emu: Make, standin: StandIn
) -> None:
    h = await fronted(make_emu, standin)
    rules = (
        "{faults: [{match: {custom_id: 'bad-*'}, error: {code: MODEL_UNAVAILABLE}}],"
        " canned: [{match: {content: '*weather*'}, response: 'Sunny.'}]}"
    )
    lines = [chat_line(f"bad-{i}", f"line {i}") for i in range(6)]
    lines += [chat_line(f"ok-{i}", f"line {i}") for i in range(4)]
    lines += [chat_line("canned", "the weather?")]
    resp = await h.client.post(
        "/v1/inference/batch",
        json={"input_file_base64": b64(lines)},
        headers={"X-Emulator-Scenario": rules},
    )
    assert resp.status_code == 200, resp.text
    batch = resp.json()["data"]
    await h.settle()
    results = {r["custom_id"]: r for r in await h.results(batch["id"])}
    assert {cid for cid, r in results.items() if r["status"] == "error"} == {
        f"bad-{i}" for i in range(6)
    }
    assert results["canned"]["response"]["choices"][0]["message"]["content"] == "Sunny."
    assert sorted(s.body["messages"][0]["content"] for s in standin.seen) == [
        f"line {i}" for i in range(4)
    ]


async def test_upstream_calls_are_bounded_while_the_api_keeps_serving(
    make_emu: Make, standin: StandIn
) -> None:
    """With `--upstream-concurrency 3` the stand-in never has more than 3 calls at once, and
    while it holds them a status read and a live call to another route are answered."""
    h = await fronted(make_emu, standin, upstream_concurrency=3)
    batch = await h.submit([chat_line(f"r{i}", f"line {i}") for i in range(30)])
    standin.hold()
    running = asyncio.create_task(h.settle())
    await standin.until_parked(3)
    assert (await h.batch(batch["id"]))["status"] == "processing"
    models = await h.client.get("/v1/models")
    assert models.status_code == 200
    assert standin.parked == 3
    standin.release()
    await running
    status = await h.batch(batch["id"])
    assert (status["status"], status["completed_count"]) == ("completed", 30)
    assert standin.most_parked == 3 and standin.calls == 30


async def test_a_cancel_during_upstream_calls_keeps_their_answers_and_cancels_the_rest(
    make_emu: Make, standin: StandIn
) -> None:
    """A chunk is 4 turns of `--upstream-concurrency`: a cancel sent while its calls are out
    takes effect once they are back, and every line not run is `BATCH_CANCELLED`."""
    h = await fronted(make_emu, standin, upstream_concurrency=2)
    batch = await h.submit([chat_line(f"r{i}", f"line {i}") for i in range(20)])
    standin.hold()
    running = asyncio.create_task(h.settle())
    await standin.until_parked(2)
    asked = asyncio.Event()
    real_cancel = h.core.worker.cancel

    async def cancel_asked(stored: Any) -> Any:
        asked.set()  # this task runs on into the worker's lock, and waits there
        return await real_cancel(stored)

    h.core.worker.cancel = cancel_asked  # type: ignore[method-assign]
    cancel = asyncio.create_task(h.client.post(f"/v1/inference/batch/{batch['id']}/cancel"))
    await asked.wait()
    standin.release()
    resp = await cancel
    await running
    assert resp.status_code == 200, resp.text
    done = resp.json()["data"]
    assert done["status"] == "cancelled"
    assert (done["completed_count"], done["failed_count"]) == (8, 12)  # one chunk of 4 x 2
    results = await h.results(batch["id"])
    assert [r["status"] for r in results] == ["ok"] * 8 + ["error"] * 12
    assert {r["error"]["code"] for r in results[8:]} == {"BATCH_CANCELLED"}
    assert standin.calls == 8


# --- settings -------------------------------------------------------------------------------------


def test_the_settings_read_and_refuse_what_they_must(tmp_path: Any) -> None:
    got = build_settings(
        {"upstream": "http://127.0.0.1:1/v1/", "upstream_model_map": "a=b, *=c"}, {}
    )
    assert got.upstream == "http://127.0.0.1:1/v1"
    assert got.upstream_model_map == (("a", "b"), ("*", "c"))
    for bad in ({"upstream": "127.0.0.1:1"}, {"upstream_model_map": "a"},
                {"replay_miss": "maybe"}, {"upstream_concurrency": "0"}):  # fmt: skip
        with pytest.raises(ConfigError):
            build_settings(bad, {})
    with pytest.raises(ConfigError, match="--record needs --upstream"):
        Upstream.from_settings(Settings(record=tmp_path / "r"))
    with pytest.raises(ConfigError, match="no such folder"):
        Upstream.from_settings(Settings(replay=tmp_path / "none"))
    with pytest.raises(ConfigError, match="--replay-miss upstream needs --upstream"):
        Upstream.from_settings(Settings(replay=tmp_path, replay_miss="upstream"))
    assert Upstream.from_settings(Settings()) is None


# --- answers, as pure functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (408, None, "BACKEND_TIMEOUT"),
        (504, {"error": "gateway timeout"}, "BACKEND_TIMEOUT"),
        (404, {"error": {"message": "model 'x' not found"}}, "BACKEND_ERROR"),
        (401, {"detail": "bad key"}, "BACKEND_ERROR"),
        (429, {}, "BACKEND_RATE_LIMITED"),
    ],
)
def test_an_error_status_becomes_a_backend_code(status: int, body: Any, code: str) -> None:
    err = error_of(Reply(status, body))
    assert err.code == code and err.message.startswith(f"The upstream answered {status}")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        assert err.message.endswith("model 'x' not found")


def test_a_half_usage_is_estimated_and_a_base64_embedding_kept() -> None:
    reply = Reply(200, {"choices": [{"message": {"content": "hi"}}], "usage": {"x": 1}})
    answer = translate(CHAT, reply, model=MODEL, response_id="chatcmpl-1", created=5)
    assert "usage" not in answer and answer["choices"][0]["finish_reason"] == "stop"
    vectors = Reply(200, {"data": [{"embedding": "AAAA"}], "usage": {"prompt_tokens": 2}})
    answer = translate(EMBED, vectors, model=EMBEDDER, response_id=None, created=5)
    assert answer == {
        "object": "list", "model": EMBEDDER,
        "data": [{"object": "embedding", "index": 0, "embedding": "AAAA"}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }  # fmt: skip
    no_arguments = {"message": {"content": None, "tool_calls": [{"function": {"name": "f"}}]}}
    bad_bodies = [
        {"choices": []},
        {"choices": [{"message": {"content": ["parts"]}}]},
        {"choices": [no_arguments]},
        [],
    ]
    for bad in bad_bodies:
        with pytest.raises(UpstreamShapeMismatch):
            translate(CHAT, Reply(200, bad), model=MODEL, response_id="x", created=5)
