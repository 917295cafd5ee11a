"""Transport faults (`api_faults[].transport`) in process: the language, what each fault does to
the ASGI messages of an answer, and what an in-process client (httpx.ASGITransport) gets. The
wire itself (a real RST, a short read, a client's timeout) is `test_transport_wire.py`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from conftest import KEY, Harness, b64, chat_line

from emulator.api.http import ConnectionDropped
from emulator.api.transport import ACTS, spoilt
from emulator.scenario.model import Transport, parse_scenario
from emulator.scenario.schema import ScenarioError
from emulator.scenario.transport_faults import MAX_WAIT, TRANSPORT_FAULTS
from emulator.tenancy import open_tenant_id

TENANT = open_tenant_id(KEY)
MODELS = "/v1/models"
CHAT = "/v1/inference/chat"
OAI_CHAT = "/oai/v1/chat/completions"
CHAT_BODY = chat_line("live", "Hello there")["body"]


def rule(transport: str, match: str = "{route: /v1/models, calls: [1]}") -> str:
    return f"api_faults:\n  - match: {match}\n    transport: {transport}\n"


async def use(h: Harness, text: str) -> None:
    resp = await h.client.put(f"/_emulator/tenants/{TENANT}/scenario", json={"yaml": text})
    assert resp.status_code == 200, resp.text


async def messages(
    h: Harness, method: str, path: str, body: bytes = b"", auth: bool = True
) -> list[dict[str, Any]]:
    """The ASGI messages the app sends for one request, as a server would get them; a dropped
    connection ends the list with {"type": "dropped"}."""
    headers = [(b"authorization", f"Bearer {KEY}".encode())] if auth else []
    if body:
        headers.append((b"content-type", b"application/json"))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "server": ("emulator.test", 80), "client": ("127.0.0.1", 1),
             "root_path": ""}  # fmt: skip
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await h.app(scope, receive, send)
    except ConnectionDropped:
        sent.append({"type": "dropped"})
    return sent


def head(sent: list[dict[str, Any]]) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


def body_parts(sent: list[dict[str, Any]]) -> list[bytes]:
    return [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]


# --- the language -------------------------------------------------------------------------------


def test_every_fault_of_the_table_is_acted_on() -> None:
    assert set(ACTS) == set(TRANSPORT_FAULTS)


def test_each_fault_reads_with_its_defaults() -> None:
    text = "".join(
        rule(t).split("\n", 1)[1] if i else rule(t)
        for i, t in enumerate(
            [
                "reset",
                "{fault: hang, for: 200ms}",
                "{fault: truncate}",
                "{fault: dribble}",
                "{fault: cut_stream, events: 3}",
                "malformed",
            ]  # fmt: skip
        )
    )
    faults = [a.transport for a in parse_scenario(text, "t.yaml").api_faults]
    assert faults == [
        Transport("reset"),
        Transport("hang", {"for": 0.2}),
        Transport("truncate", {"bytes": None}),
        Transport("dribble", {"bytes": 16, "every": 0.1}),
        Transport("cut_stream", {"events": 3}),
        Transport("malformed"),
    ]


@pytest.mark.parametrize(
    ("transport", "problem"),
    [
        ("teleport", "api_faults[0].transport (line 3): must be one of reset, hang, truncate"),
        ("{fault: hang}", "api_faults[0].transport (line 3): hang needs 'for'"),
        ("{fault: hang, for: 2m}", f"for (line 3): must be a duration of at most {MAX_WAIT:g}s"),
        ("{fault: dribble, bytes: 0}", "transport.bytes (line 3): must be an integer >= 1"),
        ("{fault: truncate, bytes: -1}", "transport.bytes (line 3): must be an integer >= 0"),
        ("{fault: reset, bytes: 3}", "is not a parameter of reset (it takes nothing)"),
        ("{events: 3}", "api_faults[0].transport (line 3): missing required key 'fault'"),
        ("{fault: malformed, size: 3}", "transport.size (line 3): unknown key 'size'"),
    ],
)  # fmt: skip
def test_a_fault_that_does_not_fit_is_refused_with_its_line(transport: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(rule(transport), "t.yaml")
    assert problem in str(refused.value)


def test_a_rule_gives_an_error_or_a_transport_fault_not_both() -> None:
    text = rule("reset") + "    error: {code: BACKEND_ERROR}\n"
    with pytest.raises(ScenarioError, match="gives 'error' or 'transport', not both"):
        parse_scenario(text, "t.yaml")


def test_a_spoilt_body_is_never_json() -> None:
    for body in [b'{"a": 1}\n{"b": 2}\n', b'{"status":"ok","data":[1,2]}', b"{}", b"", b"[1]"]:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(spoilt(body))


# --- each fault, in process ---------------------------------------------------------------------


async def test_a_transport_rule_gates_the_api_so_the_fast_path_steps_aside(emu: Harness) -> None:
    """Live chat's fast path only runs when no scenario gates the API: a transport fault on
    the chat route must reach it (here, a malformed answer to the first call)."""
    await use(emu, rule("malformed", "{route: /v1/inference/chat, calls: [1]}"))
    assert emu.core.scenarios.gated
    spoilt_answer = await emu.client.post(CHAT, json=CHAT_BODY)
    assert spoilt_answer.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(spoilt_answer.content)
    assert (await emu.client.post(CHAT, json=CHAT_BODY)).json()["status"] == "ok"


async def test_a_reset_raises_to_an_in_process_client_and_the_call_is_not_run(
    emu: Harness,
) -> None:
    await use(emu, rule("reset", "{route: /v1/inference/batch, method: POST, calls: [1]}"))
    with pytest.raises(ConnectionDropped, match="reset"):
        await emu.submit([chat_line("a")])
    assert (await emu.client.get("/v1/inference/batch")).json()["data"]["items"] == []
    await emu.submit([chat_line("a")])  # the second call goes through
    statuses = [e["status"] for e in emu.core.journal.entries(path="/v1/inference/batch")]
    assert statuses == [0, 200, 200]  # 0: no answer was sent
    dropped = emu.core.journal.entries(path="/v1/inference/batch")[0]
    assert dropped["response"]["headers"] == {} and dropped["response"]["size"] == 0
    assert emu.core.metrics.faults[("transport", "reset")] == 1


async def test_a_hang_is_real_time_on_a_frozen_clock_then_the_answer(emu: Harness) -> None:
    await use(emu, rule("{fault: hang, for: 200ms}"))
    before = emu.core.clock.now()
    started = time.monotonic()
    resp = await emu.client.get(MODELS)
    assert time.monotonic() - started >= 0.2  # the fault itself: real time passed
    assert resp.status_code == 200 and resp.json()["data"]["items"]
    assert emu.core.clock.now() == before  # the emulator clock did not move


async def test_a_hung_call_is_made_even_if_its_client_left_during_the_hang(emu: Harness) -> None:
    """As uvicorn does once a client has gone, `receive` answers `http.disconnect` (its body is
    lost) and sends go nowhere: the hang read the request before it, so the batch is made."""
    await use(emu, rule("{fault: hang, for: 200ms}", "{route: /v1/inference/batch}"))
    gone = asyncio.Event()
    body = orjson.dumps({"input_file_base64": b64([chat_line("a")])})
    scope = {"type": "http", "method": "POST", "path": "/v1/inference/batch", "query_string": b"",
             "headers": [(b"authorization", f"Bearer {KEY}".encode()),
                         (b"content-type", b"application/json")]}  # fmt: skip

    async def receive() -> dict[str, Any]:
        if gone.is_set():
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": False}

    # the client gives up 50 ms into the hang (the loop first runs this once the hang waits)
    asyncio.get_running_loop().call_later(0.05, gone.set)

    async def send(message: dict[str, Any]) -> None:
        pass

    await emu.app(scope, receive, send)
    assert len((await emu.client.get("/v1/inference/batch")).json()["data"]["items"]) == 1


async def test_a_truncation_declares_the_whole_length_and_sends_part(emu: Harness) -> None:
    await use(emu, rule("{fault: truncate, bytes: 100}"))
    sent = await messages(emu, "GET", MODELS)
    whole = int(head(sent)[b"content-length"])
    assert sent[0]["status"] == 200 and whole > 100
    assert b"".join(body_parts(sent)) == (await emu.client.get(MODELS)).content[:100]
    assert sent[-1] == {"type": "dropped"}


async def test_a_truncation_defaults_to_half_and_raises_in_process(emu: Harness) -> None:
    await use(emu, rule("{fault: truncate}"))
    sent = await messages(emu, "GET", MODELS)
    assert len(b"".join(body_parts(sent))) == int(head(sent)[b"content-length"]) // 2
    await use(emu, rule("{fault: truncate}"))  # set again: its calls count afresh
    with pytest.raises(ConnectionDropped, match="closed"):
        await emu.client.get(MODELS)
    entry = emu.core.journal.entries(path=MODELS)[-1]
    assert entry["status"] == 200  # the head was sent


async def test_a_truncation_past_the_end_sends_the_answer_whole(emu: Harness) -> None:
    await use(emu, rule("{fault: truncate, bytes: 1000000}"))
    resp = await emu.client.get(MODELS)
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


async def test_a_dribble_sends_the_body_a_few_bytes_at_a_time(emu: Harness) -> None:
    await use(emu, rule("{fault: dribble, bytes: 7, every: 1ms}"))
    sent = await messages(emu, "GET", MODELS)
    parts = body_parts(sent)
    whole = (await emu.client.get(MODELS)).content
    assert b"".join(parts) == whole and head(sent)[b"content-length"] == str(len(whole)).encode()
    assert all(len(p) == 7 for p in parts[:-2]) and 0 < len(parts[-2]) <= 7
    assert parts[-1] == b"" and sent[-1]["more_body"] is False


async def test_a_dribble_takes_real_time_between_its_parts(emu: Harness) -> None:
    await use(emu, rule("{fault: dribble, bytes: 4096, every: 100ms}"))
    started = time.monotonic()
    resp = await emu.client.get(MODELS)
    parts = -(-len(resp.content) // 4096)
    assert parts >= 2 and time.monotonic() - started >= 0.1 * (parts - 1)
    assert resp.json()["status"] == "ok"


async def stream_chat(h: Harness, path: str = OAI_CHAT) -> list[dict[str, Any]]:
    body = orjson.dumps({"model": CHAT_BODY["model"], "messages": CHAT_BODY["messages"],
                         "stream": True})  # fmt: skip
    return await messages(h, "POST", path, body)


def events(sent: list[dict[str, Any]]) -> list[bytes]:
    return [e for e in b"".join(body_parts(sent)).split(b"\n\n") if e]


@pytest.mark.parametrize("path", [OAI_CHAT, CHAT])
async def test_a_cut_stream_ends_after_n_events_without_the_last(emu: Harness, path: str) -> None:
    await use(emu, rule("{fault: cut_stream, events: 2}", f"{{route: {path}, calls: [1]}}"))
    cut = await stream_chat(emu, path)
    whole = await stream_chat(emu, path)
    assert len(events(cut)) == 2 and len(events(whole)) > 3
    assert all(e.startswith(b'data: {"') for e in events(cut))  # whole events, not [DONE]
    assert events(whole)[-1] == b"data: [DONE]"
    assert cut[-1] == {"type": "dropped"}


async def test_a_cut_stream_of_no_events_sends_the_head_only(emu: Harness) -> None:
    await use(emu, rule("{fault: cut_stream, events: 0}", f"{{route: {OAI_CHAT}}}"))
    sent = await stream_chat(emu)
    assert [m["type"] for m in sent] == ["http.response.start", "dropped"]


async def test_a_cut_stream_leaves_an_answer_that_is_no_stream_whole(emu: Harness) -> None:
    await use(emu, rule("{fault: cut_stream, events: 1}", f"{{route: {OAI_CHAT}}}"))
    resp = await emu.client.post(OAI_CHAT, json={**CHAT_BODY, "stream": False})
    assert resp.status_code == 200 and resp.json()["object"] == "chat.completion"


async def test_malformed_is_a_200_whatever_the_answer_was(emu: Harness) -> None:
    """It spoils whatever answers the call: here a 404 of a route that does not exist."""
    await use(emu, rule("malformed", "{route: /v1/nowhere}"))
    resp = await emu.client.get("/v1/nowhere")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content) > 0
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(resp.content)
    assert resp.headers["x-request-id"].startswith("req_")


async def test_a_rate_limits_answer_is_faulted_too(emu: Harness) -> None:
    await use(
        emu,
        rule("malformed", "{route: /v1/models, calls: [2]}")
        + "rate_limit: {requests: 1, per: 60s, routes: [/v1/models]}\n",
    )
    assert (await emu.client.get(MODELS)).status_code == 200
    limited = await emu.client.get(MODELS)  # refused by the limit, and spoilt by the rule
    assert limited.status_code == 200 and "x-scaigrid-ratelimit-limit" in limited.headers
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(limited.content)


async def test_results_downloads_are_faulted_on_both_surfaces(emu: Harness) -> None:
    batch = await emu.submit([chat_line(f"r{i}") for i in range(20)])
    await emu.advance(3600)
    url = (await emu.batch(batch["id"]))["results_url"]
    path = url.removeprefix("http://emulator.test").split("?")[0]
    await use(
        emu,
        rule("{fault: truncate, bytes: 50}", f'{{route: "{path}", calls: [1]}}')
        + '  - match: {route: "/oai/v1/files/*/content", calls: [1]}\n    transport: reset\n',
    )
    async with emu.client_for(None) as anon:
        with pytest.raises(ConnectionDropped, match="closed"):
            await anon.get(url)
        lines = (await anon.get(url)).content.splitlines()
    assert len(lines) == 20
    oai_batch = (await emu.client.get(f"/oai/v1/batches/{batch['id']}")).json()
    content = f"/oai/v1/files/{oai_batch['output_file_id']}/content"
    with pytest.raises(ConnectionDropped, match="reset"):
        await emu.client.get(content)
    assert len((await emu.client.get(content)).content.splitlines()) == 20


async def test_a_probability_draws_the_same_calls_each_time_it_is_set(emu: Harness) -> None:
    async def run() -> list[bool]:
        await use(emu, rule("malformed", "{route: /v1/models, probability: 0.5}"))
        hit = []
        for _ in range(16):
            resp = await emu.client.get(MODELS)
            hit.append(resp.content.rstrip().endswith(b"}") is False)
        return hit

    first = await run()
    assert 0 < sum(first) < 16
    assert await run() == first


async def test_a_batch_line_of_the_spoilt_jsonl_breaks(emu: Harness) -> None:
    """A malformed results download: a JSONL client finds a line that does not parse."""
    batch = await emu.submit([chat_line("a"), chat_line("b")])
    await emu.advance(3600)
    url = (await emu.batch(batch["id"]))["results_url"]
    await use(emu, rule("malformed", '{route: "/v1/inference/batch/*/results"}'))
    async with emu.client_for(None) as anon:
        body = (await anon.get(url)).content
    assert body and not body.endswith(b"\n")
    with pytest.raises(orjson.JSONDecodeError):
        [orjson.loads(line) for line in body.splitlines()]


def test_in_process_the_fixture_gives_the_error_a_socket_would(scaigrid_inprocess: Any) -> None:
    """The `scaigrid_inprocess` fixture has no socket: its transport turns a dropped connection
    into the httpx error a socket gives, so the SDK reports it and retries as it would."""
    import httpx
    import openai

    scaigrid_inprocess.use_scenario(rule("reset", "{route: /oai/v1/models, calls: [1, 3]}"))
    assert scaigrid_inprocess.openai_client(max_retries=1).models.list().data  # calls 1, 2
    with pytest.raises(openai.APIConnectionError) as raised:
        scaigrid_inprocess.openai_client(max_retries=0).models.list()  # call 3
    assert isinstance(raised.value.__cause__, httpx.ReadError)
    scaigrid_inprocess.use_scenario(rule("{fault: truncate}"))
    with pytest.raises(httpx.RemoteProtocolError, match="closed"):
        scaigrid_inprocess.client.get(MODELS)
