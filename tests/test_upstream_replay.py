"""`--record` and `--replay`, and a second emulator as the upstream over a real socket.

A run recorded against the stand-in replays, with the stand-in stopped, to byte-identical
batch results; a request not recorded follows `--replay-miss`; recordings are readable JSON
named after their normalised request, with no key in them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import CHAT, KEY, START, Harness, assert_error, chat_line, embed_line
from standin_upstream import StandIn

from emulator.endpoints import GENERATE
from emulator.pytest_plugin import EmulatorServer
from emulator.settings import Settings
from emulator.upstream.tape import REDACTED, name_of, normalise

MODEL = "scailabs/poolnoodle-omni"
UPSTREAM_KEY = "upstream-secret-key"
MAP = (("*", "small-local-model"),)

Make = Callable[..., Awaitable[Harness]]


def chat(content: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}]}


def run_lines() -> list[dict[str, Any]]:
    lines = [chat_line(f"r{i}", f"line {i % 4}") for i in range(8)]  # repeats: one recording
    lines.append(chat_line("broken", "fail:500"))  # an error answer is recorded too
    lines.append(embed_line("emb", ["a", "b"]))
    lines.append(
        {"custom_id": "gen", "method": "POST", "url": GENERATE,
         "body": {"model": MODEL, "prompt": "Once upon a time"}}
    )  # fmt: skip
    return lines


async def run_through(h: Harness) -> tuple[bytes, bytes]:
    """(the results file of the batch, a live chat's body), byte for byte."""
    live = await h.client.post(CHAT, json=chat("live one"))
    batch = await h.submit(run_lines())
    await h.settle()
    url = (await h.batch(batch["id"]))["results_url"]
    async with h.client_for(None) as anon:
        results = await anon.get(url)
    assert results.status_code == 200
    return results.content, live.content


async def test_a_recorded_run_replays_byte_identically_without_the_upstream(
    make_emu: Make, standin: StandIn, tmp_path: Path
) -> None:
    tape = tmp_path / "tape"
    recording = await make_emu(
        upstream=standin.url,
        upstream_key=UPSTREAM_KEY,
        upstream_model_map=MAP,
        record=tape,
    )
    recorded = await run_through(recording)
    calls = standin.calls
    assert calls == 1 + 8 + 3  # recording only, every request is asked (repeats included)
    await standin.close()  # no upstream from here on

    replaying = await make_emu(replay=tape, upstream_model_map=MAP)
    assert await run_through(replaying) == recorded
    assert standin.calls == calls
    lines = [orjson.loads(line) for line in recorded[0].splitlines()]
    assert lines[0]["response"]["choices"][0]["message"]["content"] == "echo: line 0"
    assert next(r for r in lines if r["custom_id"] == "broken")["error"]["code"] == "BACKEND_ERROR"

    files = sorted(tape.iterdir())
    assert len(files) == len({(s.path, orjson.dumps(s.body)) for s in standin.seen}) == 8
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert UPSTREAM_KEY not in text and "authorization" not in text.lower()
        assert text.startswith('{\n  "request": {')  # pretty, keys sorted: diffable
        recording_ = orjson.loads(text)
        assert path.name == name_of(recording_["request"])
        assert recording_["request"]["body"]["model"] == "small-local-model"
        assert set(recording_["response"]) == {"status", "body"}


async def test_a_miss_is_an_error_a_fake_answer_or_a_call_recorded(
    make_emu: Make, standin: StandIn, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    strict = await make_emu(replay=empty)
    error = assert_error(await strict.client.post(CHAT, json=chat("hi")), 502, "REPLAY_MISS")
    assert "No recording of this /v1/inference/chat request" in error["message"]
    batch = await strict.submit([chat_line("a", "hi")])
    await strict.settle()
    [result] = await strict.results(batch["id"])
    assert result["error"]["code"] == "REPLAY_MISS"

    faking = await make_emu(replay=empty, replay_miss="fake")
    plain = await make_emu()
    faked = (await faking.client.post(CHAT, json=chat("hi"))).json()["data"]
    engine = (await plain.client.post(CHAT, json=chat("hi"))).json()["data"]
    assert faked == engine

    tape = tmp_path / "tape"
    through = await make_emu(
        upstream=standin.url,
        replay=tape, record=tape, replay_miss="upstream", upstream_key=UPSTREAM_KEY,
    )  # fmt: skip
    tape.mkdir(exist_ok=True)
    first = (await through.client.post(CHAT, json=chat("hi"))).json()["data"]
    second = (await through.client.post(CHAT, json=chat("hi"))).json()["data"]
    assert first["choices"] == second["choices"] and standin.calls == 1  # then from the tape
    assert len(list(tape.iterdir())) == 1
    assert empty.exists() and not list(empty.iterdir())  # a replay-only folder is never written


async def test_a_recording_edited_out_of_shape_is_a_clear_miss(
    make_emu: Make, standin: StandIn, tmp_path: Path
) -> None:
    tape = tmp_path / "tape"
    recording = await make_emu(upstream=standin.url, record=tape)
    assert (await recording.client.post(CHAT, json=chat("hi"))).status_code == 200
    [path] = tape.iterdir()
    path.write_text(path.read_text(encoding="utf-8")[:-20], encoding="utf-8")  # cut short
    replaying = await make_emu(replay=tape)
    error = assert_error(await replaying.client.post(CHAT, json=chat("hi")), 502, "REPLAY_MISS")
    assert f"The recording {path} cannot be read" in error["message"]


def test_the_normalised_request_drops_transport_options_and_redacts_keys() -> None:
    body = {
        "model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
        "stream": True, "stream_options": {"include_usage": True},
        "api_key": "s3cret", "metadata": [{"Token": "t0ken", "keep": 1}],
    }  # fmt: skip
    assert normalise(CHAT, body) == {
        "route": CHAT,
        "body": {
            "model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
            "api_key": REDACTED, "metadata": [{"Token": REDACTED, "keep": 1}],
        },
    }  # fmt: skip
    assert name_of(normalise(CHAT, body)) == name_of(normalise(CHAT, {**body, "stream": False}))


# --- a second emulator as the upstream --------------------------------------------------------


@pytest.fixture
def upstream_emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    """Another emulator, seed 7, served by uvicorn on loopback: its `/oai/v1` is the upstream."""
    server = EmulatorServer(
        Settings(db=str(tmp_path / "up.db"), clock="frozen", clock_start=START, seed=7)
    )
    server.start()
    yield server
    server.stop()


async def test_a_second_emulator_answers_live_calls_and_batch_lines(
    make_emu: Make, upstream_emulator: EmulatorServer
) -> None:
    base = upstream_emulator.base_url
    h = await make_emu(upstream=f"{base}/oai/v1", upstream_key=KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=f"{base}/oai/v1", headers=headers) as direct:

        async def upstream_says(path: str, body: dict[str, Any]) -> Any:
            resp = await direct.post(path, json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()

        said = await upstream_says("/chat/completions", chat("hello"))
        answer = (await h.client.post(CHAT, json=chat("hello"))).json()["data"]
        assert answer["choices"][0]["message"] == {
            "role": "assistant",
            "content": said["choices"][0]["message"]["content"],
        }
        assert answer["usage"] == said["usage"] and answer["id"] != said["id"]
        own = await make_emu()  # seed 0: the emulator's own text differs from seed 7's
        mine = (await own.client.post(CHAT, json=chat("hello"))).json()["data"]
        assert mine["choices"][0]["message"] != answer["choices"][0]["message"]

        tool = {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
        calling = {**chat("weather?"), "tools": [tool], "tool_choice": "required"}
        said = await upstream_says("/chat/completions", calling)
        answer = (await h.client.post(CHAT, json=calling)).json()["data"]
        # the upstream names each call after its own n-th answer: the calls, not their ids, match
        assert [c["function"] for c in answer["choices"][0]["message"]["tool_calls"]] == [
            c["function"] for c in said["choices"][0]["message"]["tool_calls"]
        ]
        assert answer["choices"][0]["message"]["content"] is None
        assert answer["choices"][0]["finish_reason"] == "tool_calls"

        embed = {"model": "openai/text-embedding-3-small", "input": ["x", "y"]}
        vectors = (await h.client.post("/v1/inference/embed", json=embed)).json()["data"]
        assert vectors["data"] == (await upstream_says("/embeddings", embed))["data"]

        lines = [chat_line(f"r{i}", f"question {i}") for i in range(20)]
        batch = await h.submit(lines)
        await h.settle()
        results = await h.results(batch["id"])
        assert [r["status"] for r in results] == ["ok"] * 20
        for line, result in zip(lines, results, strict=True):
            direct_answer = await upstream_says("/chat/completions", line["body"])
            assert (
                result["response"]["choices"][0]["message"]["content"]
                == direct_answer["choices"][0]["message"]["content"]
            )
