"""Live inference over HTTP: envelopes, determinism, error codes, SSE and image links.

The engine's own behaviour (text, tools, JSON, vectors, PNGs) is tested in test_engine.py; this
file tests what the routes add: auth, envelopes, status codes, streaming and pre-signed URLs.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import orjson
import pytest
from conftest import Harness, assert_error

MakeEmu = Callable[..., Awaitable[Harness]]

CHAT = "/v1/inference/chat"
GENERATE = "/v1/inference/generate"
EMBED = "/v1/inference/embed"
IMAGES = "/v1/inference/images/generate"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BODIES: dict[str, dict[str, Any]] = {
    CHAT: {
        "model": "scailabs/poolnoodle-omni",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 50,
    },
    GENERATE: {"model": "scailabs/poolnoodle-omni", "prompt": "Once upon a time", "max_tokens": 40},
    EMBED: {"model": "openai/text-embedding-3-small", "input": ["first text", "second text"]},
    IMAGES: {"model": "openai/dall-e-3", "prompt": "a red bicycle", "response_format": "b64_json"},
}


def ok_data(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"status", "data"}
    assert body["status"] == "ok"
    data: dict[str, Any] = body["data"]
    return data


# --- envelopes --------------------------------------------------------------------------------


async def test_chat_answers_in_the_envelope(emu: Harness) -> None:
    data = ok_data(await emu.client.post(CHAT, json=BODIES[CHAT]))
    assert data["model"] == "scailabs/poolnoodle-omni"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] <= 50


async def test_generate_answers_in_the_envelope(emu: Harness) -> None:
    data = ok_data(await emu.client.post(GENERATE, json=BODIES[GENERATE]))
    assert isinstance(data["choices"][0]["text"], str) and data["choices"][0]["text"]
    assert data["usage"]["completion_tokens"] <= 40


async def test_embed_answers_in_the_envelope(emu: Harness) -> None:
    data = ok_data(await emu.client.post(EMBED, json=BODIES[EMBED]))
    assert [d["index"] for d in data["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 1536 for d in data["data"])
    data = ok_data(await emu.client.post(EMBED, json={**BODIES[EMBED], "dimensions": 256}))
    assert all(len(d["embedding"]) == 256 for d in data["data"])


async def test_images_answer_in_the_envelope(emu: Harness) -> None:
    data = ok_data(await emu.client.post(IMAGES, json=BODIES[IMAGES]))
    item = data["data"][0]
    assert base64.b64decode(item["b64_json"]).startswith(PNG_SIGNATURE)
    assert isinstance(item["revised_prompt"], str)  # DALL-E 3 revises prompts


async def test_live_answer_uses_the_emulator_clock(emu: Harness) -> None:
    data = ok_data(await emu.client.post(CHAT, json=BODIES[CHAT]))
    assert data["created"] == int(emu.core.clock.now())


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(BODIES))
async def test_same_request_twice_gives_the_same_answer_with_its_own_id(
    emu: Harness, route: str
) -> None:
    """The content is a function of seed, model and body; a response id names the response
    (chat and generate carry one; embeddings and images have none)."""
    first = await emu.client.post(route, json=BODIES[route])
    second = await emu.client.post(route, json=BODIES[route])
    assert first.status_code == second.status_code == 200
    # Another key (another tenant) and key order in the body do not change the answer.
    reordered = dict(reversed(list(BODIES[route].items())))
    async with emu.client_for("sgk_other_" + "z" * 32) as other:
        third = await other.post(route, json=reordered)
    answers = [r.json()["data"] for r in (first, second, third)]
    if route in (CHAT, GENERATE):
        assert len({a.pop("id") for a in answers}) == 3
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize("route", list(BODIES))
async def test_same_request_on_two_emulators_with_one_seed(make_emu: MakeEmu, route: str) -> None:
    a, b = await make_emu(), await make_emu()
    first = await a.client.post(route, json=BODIES[route])
    second = await b.client.post(route, json=BODIES[route])
    assert first.status_code == 200
    assert first.content == second.content


@pytest.mark.parametrize("route", list(BODIES))
async def test_another_seed_changes_the_answer(emu: Harness, make_emu: MakeEmu, route: str) -> None:
    other = await make_emu(seed=1)
    first = await emu.client.post(route, json=BODIES[route])
    second = await other.client.post(route, json=BODIES[route])
    assert second.status_code == 200
    assert first.content != second.content


# --- errors through HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(BODIES))
async def test_unknown_model_is_model_not_found(emu: Harness, route: str) -> None:
    resp = await emu.client.post(route, json={**BODIES[route], "model": "openai/gpt-9"})
    assert_error(resp, 404, "MODEL_NOT_FOUND")


@pytest.mark.parametrize(
    ("route", "model"),
    [
        (CHAT, "openai/text-embedding-3-small"),
        (GENERATE, "openai/dall-e-3"),
        (EMBED, "openai/gpt-4o"),
        (IMAGES, "openai/whisper-1"),
    ],
)
async def test_wrong_modality_is_a_validation_error(emu: Harness, route: str, model: str) -> None:
    err = assert_error(await emu.client.post(route, json={**BODIES[route], "model": model}), 422,
                "VALIDATION_ERROR")  # fmt: skip
    assert err["details"][0]["field"] == "model"


@pytest.mark.parametrize(
    ("route", "change", "field"),
    [
        (CHAT, {"max_tokens": 32769}, "max_tokens"),  # poolnoodle's max_output_tokens is 32768
        (CHAT, {"max_tokens": 0}, "max_tokens"),
        (CHAT, {"messages": None}, "messages"),
        (CHAT, {"messages": []}, "messages"),
        (CHAT, {"temperature": 3}, "temperature"),
        (CHAT, {"stream": "yes"}, "stream"),
        (GENERATE, {"max_tokens": 10**6}, "max_tokens"),
        (GENERATE, {"prompt": None}, "prompt"),
        (EMBED, {"input": []}, "input"),
        (EMBED, {"dimensions": 4096}, "dimensions"),
        (IMAGES, {"size": "3x3"}, "size"),
        (IMAGES, {"prompt": ""}, "prompt"),
    ],
)
async def test_bad_field_is_a_validation_error(
    emu: Harness, route: str, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**BODIES[route], **change}.items() if v is not None}
    err = assert_error(await emu.client.post(route, json=body), 422, "VALIDATION_ERROR")
    assert field in [d.get("field") for d in err["details"]], err


async def test_missing_model_is_a_validation_error(emu: Harness) -> None:
    body = {k: v for k, v in BODIES[CHAT].items() if k != "model"}
    err = assert_error(await emu.client.post(CHAT, json=body), 422, "VALIDATION_ERROR")
    assert err["details"][0]["field"] == "model"


async def test_several_bad_fields_are_all_listed(emu: Harness) -> None:
    body = {**BODIES[CHAT], "max_tokens": -1, "temperature": 9, "top_p": 2}
    err = assert_error(await emu.client.post(CHAT, json=body), 422, "VALIDATION_ERROR")
    assert {d["field"] for d in err["details"]} >= {"max_tokens", "temperature", "top_p"}


@pytest.mark.parametrize("route", list(BODIES))
async def test_inference_needs_a_key(emu: Harness, route: str) -> None:
    async with emu.client_for(None) as anon:
        assert_error(await anon.post(route, json=BODIES[route]), 401, "AUTH_TOKEN_MISSING")


# --- SSE streaming ----------------------------------------------------------------------------


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order; every event must be a data event."""
    assert text.endswith("\n\n"), text[-50:]
    payloads = []
    for event in text.split("\n\n")[:-1]:
        assert event.startswith("data: "), event
        assert "\n" not in event, event
        payloads.append(event[len("data: ") :])
    return payloads


@pytest.mark.parametrize("max_tokens", [50, 3])
async def test_stream_concatenates_to_the_plain_answer(emu: Harness, max_tokens: int) -> None:
    body = {**BODIES[CHAT], "max_tokens": max_tokens}
    plain = ok_data(await emu.client.post(CHAT, json=body))
    resp = await emu.client.post(CHAT, json={**body, "stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-request-id"].startswith("req_")
    payloads = sse_events(resp.text)
    assert payloads[-1] == "[DONE]"
    assert "[DONE]" not in payloads[:-1]
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert len(chunks) >= 2
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    [stream_id] = {c["id"] for c in chunks}  # one response, its own id
    assert stream_id.startswith("chatcmpl-") and stream_id != plain["id"]
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == plain["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == plain["choices"][0]["finish_reason"]
    assert all(f is None for f in finishes[:-1])


async def test_stream_is_deterministic(emu: Harness, make_emu: MakeEmu) -> None:
    body = {**BODIES[CHAT], "stream": True}
    first = await emu.client.post(CHAT, json=body)
    second = await emu.client.post(CHAT, json=body)
    other = await (await make_emu()).client.post(CHAT, json=body)
    assert other.content == first.content  # the same call on another emulator, same seed
    ids = [orjson.loads(sse_events(r.text)[0])["id"] for r in (first, second)]
    assert ids[0] != ids[1]
    assert first.content.replace(ids[0].encode(), b"ID") == second.content.replace(
        ids[1].encode(), b"ID"
    )


async def test_stream_include_usage(emu: Harness) -> None:
    body = {**BODIES[CHAT], "stream": True, "stream_options": {"include_usage": True}}
    plain = ok_data(await emu.client.post(CHAT, json=BODIES[CHAT]))
    chunks = [
        orjson.loads(p) for p in sse_events((await emu.client.post(CHAT, json=body)).text)[:-1]
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"model": "nope/nope"}, 404, "MODEL_NOT_FOUND"),
        ({"max_tokens": 0}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_bad_stream_request_is_a_plain_error_not_a_stream(
    emu: Harness, change: dict[str, Any], status: int, code: str
) -> None:
    resp = await emu.client.post(CHAT, json={**BODIES[CHAT], **change, "stream": True})
    assert resp.headers["content-type"] == "application/json"
    assert_error(resp, status, code)


# --- image URLs -------------------------------------------------------------------------------


async def image_url(emu: Harness, **change: Any) -> str:
    body = {**BODIES[IMAGES], "response_format": "url", **change}
    data = ok_data(await emu.client.post(IMAGES, json=body))
    url: str = data["data"][0]["url"]
    assert "b64_json" not in data["data"][0]
    return url


def tamper(url: str, **query: str) -> str:
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts._replace(query=urlencode({**params, **query})).geturl()


async def test_url_is_the_default_response_format(emu: Harness) -> None:
    body = {k: v for k, v in BODIES[IMAGES].items() if k != "response_format"}
    data = ok_data(await emu.client.post(IMAGES, json=body))
    assert "url" in data["data"][0]


async def test_image_url_is_fetchable_without_auth(emu: Harness) -> None:
    url = await image_url(emu, n=2)
    async with emu.client_for(None) as anon:
        resp = await anon.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert resp.content.startswith(PNG_SIGNATURE)
    assert resp.headers["x-request-id"].startswith("req_")
    async with emu.client_for(None) as anon:  # the same link again: the same bytes
        assert (await anon.get(url)).content == resp.content


@pytest.mark.parametrize(
    "query",
    [{"signature": "0" * 64}, {"expires": "99999999999"}, {"signature": ""}, {"expires": "x"}],
    ids=["signature", "expires", "empty-signature", "bad-expires"],
)
async def test_tampered_image_url_is_invalid(emu: Harness, query: dict[str, str]) -> None:
    url = await image_url(emu)
    async with emu.client_for(None) as anon:
        resp = await anon.get(tamper(url, **query))
    assert_error(resp, 403, "RESULTS_URL_INVALID")


async def test_image_url_for_another_image_is_invalid(emu: Harness) -> None:
    url = await image_url(emu)
    parts = urlsplit(url)
    other = parts._replace(path=parts.path.replace("/images/", "/images/0")).geturl()
    async with emu.client_for(None) as anon:
        assert_error(await anon.get(other), 403, "RESULTS_URL_INVALID")
        assert_error(await anon.get(parts._replace(query="").geturl()), 403, "RESULTS_URL_INVALID")


async def test_image_url_expires_after_an_hour_of_emulator_time(emu: Harness) -> None:
    url = await image_url(emu)
    async with emu.client_for(None) as anon:
        await emu.advance(3599)
        assert (await anon.get(url)).status_code == 200
        await emu.advance(1)
        assert_error(await anon.get(url), 403, "RESULTS_URL_EXPIRED")


async def test_image_links_point_where_the_caller_reached_us(emu: Harness) -> None:
    """Behind a port mapping the settings' host is unreachable; the request's host is not."""
    resp = await emu.client.post(
        "/v1/inference/images/generate",
        json={"model": "openai/dall-e-2", "prompt": "a lighthouse", "response_format": "url"},
    )
    url = resp.json()["data"]["data"][0]["url"]
    assert url.startswith("http://emulator.test/v1/inference/images/")


async def test_a_repeated_request_is_the_same_answer_at_a_later_time(emu: Harness) -> None:
    """Repeated bodies are answered from memory: everything but `created` is the same."""
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "again"}]}
    first = (await emu.client.post("/v1/inference/chat", json=body)).json()["data"]
    await emu.advance(90)
    second = (await emu.client.post("/v1/inference/chat", json=body)).json()["data"]
    assert second["created"] == first["created"] + 90
    assert second["id"] != first["id"]
    assert {**second, "created": 0, "id": ""} == {**first, "created": 0, "id": ""}
