"""Envelopes, request ids, routing errors, body parsing and the last-resort INTERNAL_ERROR."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import KEY, REQUEST_ID, Harness, error_envelope

from emulator.api.routes import ROUTES

CHAT = "/v1/inference/chat"
CHAT_BODY = {
    "model": "scailabs/poolnoodle-omni",
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 20,
}

MakeEmu = Callable[..., Awaitable[Harness]]


# --- request ids ------------------------------------------------------------------------------


async def test_every_response_carries_a_request_id(emu: Harness) -> None:
    responses = [
        await emu.client.get("/v1/models"),  # success
        await emu.client.get("/v1/models/nope%2Fnope"),  # domain error
        await emu.client.get("/nowhere"),  # routing error
        await emu.client.post(CHAT, json={**CHAT_BODY, "stream": True}),  # SSE stream
        await emu.client.get("/_emulator/health"),  # control plane, no auth
    ]
    async with emu.client_for(None) as anon:
        responses.append(await anon.get("/v1/models"))  # auth error
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(REQUEST_ID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    for resp in responses:
        if resp.status_code >= 400:
            assert resp.json()["meta"]["request_id"] == resp.headers["x-request-id"]


async def test_request_ids_are_deterministic_for_a_seed(make_emu: MakeEmu) -> None:
    async def ids(h: Harness) -> list[str]:
        out = []
        for path in ("/v1/models", "/nowhere", "/v1/models/openai%2Fgpt-4o"):
            out.append((await h.client.get(path)).headers["x-request-id"])
        return out

    first, second, other = await make_emu(), await make_emu(), await make_emu(seed=1)
    assert await ids(first) == await ids(second)
    assert set(await ids(first)).isdisjoint(await ids(other))


async def test_request_ids_are_journaled(emu: Harness) -> None:
    resp = await emu.client.get("/v1/models")
    entries = emu.core.journal.entries(path="/v1/models")
    assert entries[-1]["request_id"] == resp.headers["x-request-id"]
    assert entries[-1]["status"] == 200


# --- envelopes --------------------------------------------------------------------------------


async def test_success_envelope(emu: Harness) -> None:
    resp = await emu.client.get("/v1/models/openai%2Fgpt-4o")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"status", "data"}
    assert body["status"] == "ok"
    assert body["data"]["slug"] == "openai/gpt-4o"


async def test_list_envelope(emu: Harness) -> None:
    body = (await emu.client.get("/v1/models")).json()
    assert set(body) == {"status", "data", "pagination"}
    assert body["status"] == "ok"
    assert isinstance(body["data"]["items"], list)
    assert set(body["pagination"]) == {"has_more", "next_cursor"}


async def test_unknown_route_is_not_found(emu: Harness) -> None:
    error_envelope(await emu.client.get("/v1/nothing-here"), 404, "NOT_FOUND")
    error_envelope(await emu.client.post("/v2/inference/chat", json={}), 404, "NOT_FOUND")
    async with emu.client_for(None) as anon:  # routing comes before auth
        error_envelope(await anon.get("/nowhere"), 404, "NOT_FOUND")


async def test_wrong_method_is_method_not_allowed(emu: Harness) -> None:
    resp = await emu.client.delete("/v1/models")
    error_envelope(resp, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in resp.headers["allow"]
    resp = await emu.client.get(CHAT)
    error_envelope(resp, 405, "METHOD_NOT_ALLOWED")
    assert resp.headers["allow"] == "POST"


async def test_allow_header_lists_methods_of_every_route_on_the_path(emu: Harness) -> None:
    """`/v1/inference/batch` is two routes (POST and GET); a PUT must be told about both."""
    resp = await emu.client.put("/v1/inference/batch", json={})
    error_envelope(resp, 405, "METHOD_NOT_ALLOWED")
    allowed = {m.strip() for m in resp.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    resp = await emu.client.post("/v1/files/file_x")
    error_envelope(resp, 405, "METHOD_NOT_ALLOWED")
    allowed = {m.strip() for m in resp.headers["allow"].split(",")}
    assert {"GET", "DELETE"} <= allowed


# --- bodies -----------------------------------------------------------------------------------


async def test_malformed_json_body_is_a_validation_error(emu: Harness) -> None:
    resp = await emu.client.post(
        CHAT, content=b'{"model": "x",}', headers={"content-type": "application/json"}
    )
    body = error_envelope(resp, 422, "VALIDATION_ERROR")
    details = body["error"]["details"]
    assert isinstance(details, list) and details
    assert all(isinstance(d["message"], str) for d in details)
    assert re.search(r"\bbyte 13\b", details[0]["message"]), details  # the stray comma


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b"nul", b'{"a": 1} trailing'],
    ids=["empty", "open-brace", "not-utf8", "bad-literal", "trailing"],
)
async def test_undecodable_bodies_are_validation_errors(emu: Harness, raw: bytes) -> None:
    body = error_envelope(await emu.client.post(CHAT, content=raw), 422, "VALIDATION_ERROR")
    assert "byte" in body["error"]["details"][0]["message"]


@pytest.mark.parametrize("raw", [b"[]", b'[{"model": "x"}]', b'"text"', b"5", b"null"])
async def test_non_object_json_body_is_a_validation_error(emu: Harness, raw: bytes) -> None:
    body = error_envelope(await emu.client.post(CHAT, content=raw), 422, "VALIDATION_ERROR")
    assert "object" in body["error"]["message"]
    assert body["error"]["details"]


# --- the last line of defence -----------------------------------------------------------------


async def test_unexpected_exception_is_internal_error_in_the_envelope(
    emu: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-detail-42")

    monkeypatch.setattr(emu.core.live, "infer", explode)
    with caplog.at_level(logging.ERROR, logger="emulator"):
        resp = await emu.client.post(CHAT, json=CHAT_BODY)
    body = error_envelope(resp, 500, "INTERNAL_ERROR")
    assert "Traceback" not in resp.text
    assert "secret-detail-42" not in resp.text
    assert 'File "' not in resp.text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged, "the fault was not logged"
    assert logged[-1].exc_info is not None
    assert "secret-detail-42" in str(logged[-1].exc_info[1])
    assert CHAT in logged[-1].getMessage()
    # The journal records the answer the client got.
    entry = emu.core.journal.entries(path=CHAT)[-1]
    assert (entry["status"], entry["request_id"]) == (500, body["meta"]["request_id"])
    # The emulator keeps serving.
    monkeypatch.undo()
    assert (await emu.client.post(CHAT, json=CHAT_BODY)).status_code == 200


# --- never a bare 500 -------------------------------------------------------------------------

GARBAGE: dict[str, bytes] = {
    "empty": b"",
    "open-brace": b"{",
    "array": b"[]",
    "model-int": b'{"model": 5}',
    "random": random.Random(7).randbytes(64),
    "nested": b'{"model": {"a": [1, 2, {"b": null}]}, "messages": "x", "input": 3}',
}


#: Success bodies that are documents of their own, not envelopes.
NOT_ENVELOPED = {"/openapi.json"}


def _concrete(path_format: str) -> str:
    """A request path for a route template: every path parameter becomes a plausible id."""
    return re.sub(r"\{[^}]+\}", "x_123", path_format)


def _sweep() -> list[Any]:
    return [
        pytest.param(method, _concrete(route.path_format), id=f"{method} {route.path_format}")
        for route in ROUTES
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]


@pytest.mark.parametrize(("method", "path"), _sweep())
async def test_never_a_bare_500(emu: Harness, method: str, path: str) -> None:
    """Every garbage body, with and without a key: a 4xx/2xx answer in the envelope."""
    problems = []
    for auth in (True, False):
        async with emu.client_for(KEY if auth else None) as client:
            for name, raw in GARBAGE.items():
                resp = await client.request(
                    method, path, content=raw, headers={"content-type": "application/json"}
                )
                problem = _problem(resp, path)
                if problem:
                    problems.append(f"{name} {'auth' if auth else 'anon'}: {problem}")
    assert not problems, "\n".join(problems)


def _problem(resp: httpx.Response, path: str) -> str | None:
    if resp.status_code >= 500:
        return f"{resp.status_code} {resp.text[:300]}"
    if not REQUEST_ID.fullmatch(resp.headers.get("x-request-id", "")):
        return "no X-Request-ID"
    if not resp.headers.get("content-type", "").startswith("application/json"):
        return None  # a download or a stream: checked by its own tests
    body = resp.json()
    if path in NOT_ENVELOPED and resp.status_code < 400:
        return None
    if path.startswith("/oai/"):  # OpenAI's error body, not the envelope
        if resp.status_code >= 400 and set(body) != {"error"}:
            return f"not OpenAI's error body: {resp.text[:300]}"
        return None
    if not isinstance(body, dict) or body.get("status") not in ("ok", "error"):
        return f"not an envelope: {resp.text[:300]}"
    if body["status"] == "error" and body["meta"]["request_id"] != resp.headers["x-request-id"]:
        return "meta.request_id differs from X-Request-ID"
    return None
