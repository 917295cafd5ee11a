"""`GET /openapi.json`: a valid OpenAPI 3.1 document of every route, whose declarations are the
ones the handlers use, and whose schemas the real answers meet (successes and errors alike)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import KEY, Harness, b64, chat_line, embed_line, jsonl
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from emulator.api.openapi import template
from emulator.api.routes import ROUTES, Op
from emulator.wire_control import CONTROL_BODIES, CONTROL_QUERIES

DOC_URI = "urn:scaigrid-emulator:openapi"
GPT = "openai/gpt-4o"
CHAT_BODY = {"model": GPT, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}


async def document(emu: Harness) -> dict[str, Any]:
    resp = await emu.client.get("/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return doc


# --- the document itself --------------------------------------------------------------------------


async def test_the_document_is_valid_openapi_3_1(emu: Harness) -> None:
    doc = await document(emu)
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == emu.core.version
    validate(doc)  # openapi-spec-validator: the structure, every $ref, unique operation ids


async def test_it_lists_every_route_with_its_methods_and_summary(emu: Harness) -> None:
    doc = await document(emu)
    expected: dict[str, dict[str, str]] = {}
    for route in ROUTES:
        assert isinstance(route, Op) and route.summary
        for method in (route.methods or set()) - {"HEAD"}:
            expected.setdefault(template(route.path), {})[method.lower()] = route.summary
    listed = {
        path: {m: op["summary"] for m, op in ops.items()} for path, ops in doc["paths"].items()
    }
    assert listed == expected


def _read_names(handler: Any) -> set[str]:
    """The query parameters a handler reads, found in its source."""
    source = inspect.getsource(handler)
    found = re.findall(r'\bq(?:uery_params)?\.get\("(\w+)"', source)
    found += re.findall(r'\bq\["(\w+)"\]|"(\w+)" in q\b', source)
    found += re.findall(r'_choice\(request, "(\w+)"', source)
    names = {n for item in found for n in (item if isinstance(item, tuple) else (item,)) if n}
    for call in re.findall(r'control_query\("(\w+)"|_Query\(request, "(\w+)"\)', source):
        route = next(c for c in call if c)
        names |= {p.name for p in CONTROL_QUERIES[route]}
    return names


@pytest.mark.parametrize("route", [r for r in ROUTES if isinstance(r, Op)], ids=lambda r: r.name)
def test_the_query_a_route_declares_is_the_query_its_handler_reads(route: Op) -> None:
    declared = {p.name for p in route.doc.query}
    assert declared == _read_names(route.endpoint)


async def test_control_bodies_are_their_tables(emu: Harness) -> None:
    """The control routes' request bodies are `CONTROL_BODIES`: the same keys, no others."""
    doc = await document(emu)
    bodies = {
        "reset": ("/_emulator/reset", "post"),
        "clock": ("/_emulator/clock", "put"),
        "clock/advance": ("/_emulator/clock/advance", "post"),
        "seed": ("/_emulator/seed", "put"),
        "scenario": ("/_emulator/scenario", "put"),
        "tenants/{tenant}/batches/{batch_id}/cancel": (
            "/_emulator/tenants/{tenant}/batches/{batch_id}/cancel",
            "post",
        ),
    }
    assert set(bodies) == set(CONTROL_BODIES)
    for name, (path, method) in bodies.items():
        schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["properties"]) == set(CONTROL_BODIES[name].keys)
        assert schema["additionalProperties"] is False


async def test_enums_nullables_and_required_fields_are_declared(emu: Harness) -> None:
    schemas = (await document(emu))["components"]["schemas"]
    batch = schemas["Batch"]
    assert batch["properties"]["status"]["enum"] == [
        "pending", "processing", "completed", "failed", "cancelled"
    ]  # fmt: skip
    assert set(batch["required"]) == set(batch["properties"])
    assert batch["properties"]["completed_at"]["type"] == ["string", "null"]
    assert len(schemas["OaiBatch"]["properties"]["status"]["enum"]) == 8
    assert schemas["Clock"]["properties"]["mode"]["enum"] == ["real", "scaled", "frozen"]


# --- real answers against the document ------------------------------------------------------------


class Checker:
    """Sends requests by route template and checks each answer against the document: the
    operation's schema for the answer's status (200, else `default`) and media type."""

    def __init__(self, emu: Harness, doc: dict[str, Any]) -> None:
        self.emu = emu
        self.doc = doc
        self.registry = Registry().with_resource(DOC_URI, Resource(doc, DRAFT202012))
        self.seen: set[tuple[str, str, str]] = set()  # (method, template, "200" or "default")

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        client: httpx.AsyncClient | None = None,
        expect: int = 200,
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """`path` is the route's template; its `{names}` are filled from `params`."""
        params = dict(params or {})
        real = re.sub(r"{(\w+)}", lambda m: str(params.pop(m.group(1))), path)
        resp = await (client or self.emu.client).request(
            method, real, params=params or None, **kwargs
        )
        assert resp.status_code == expect, (method, real, resp.text)
        self.check(method, path, resp)
        return resp

    def check(self, method: str, path: str, resp: httpx.Response) -> None:
        op = self.doc["paths"][path][method.lower()]
        code = "200" if resp.status_code == 200 else "default"
        self.seen.add((method.upper(), path, code))
        media = resp.headers["content-type"].split(";")[0].strip()
        content = op["responses"][code]["content"]
        assert media in content, (method, path, media, list(content))
        pointer = "/".join(
            ["#", "paths", path.replace("~", "~0").replace("/", "~1"), method.lower(),
             "responses", code, "content", media.replace("/", "~1"), "schema"]
        )  # fmt: skip
        body = resp.json() if media == "application/json" else resp.text
        validator = Draft202012Validator({"$ref": DOC_URI + pointer}, registry=self.registry)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
                  validator.iter_errors(body)]  # fmt: skip
        assert errors == [], (method, path, resp.status_code, body)

    def operations(self) -> Iterator[tuple[str, str]]:
        for path, ops in self.doc["paths"].items():
            for method in ops:
                yield method.upper(), path


async def upload(check: Checker, path: str, content: bytes, purpose: str = "batch") -> str:
    files = {"file": ("input.jsonl", content, "application/jsonl")}
    resp = await check("POST", path, files=files, data={"purpose": purpose})
    body = resp.json()
    return str(body["data"]["id"] if "data" in body else body["id"])


def signed(url: str) -> dict[str, str]:
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    return {"expires": query["expires"], "signature": query["signature"]}


async def test_every_answer_meets_the_document(emu: Harness) -> None:
    check = Checker(emu, await document(emu))
    anon = emu.client_for(None)
    try:
        await _native(check, emu, anon)
        await _openai(check, emu, anon)
        await _webhooks(check, emu)
        await _control(check, emu, anon)
    finally:
        await anon.aclose()
    every = set(check.operations())
    answered = {(m, p) for m, p, code in check.seen if code == "200"}
    assert every - answered == set(), "operations never answered 200 here"
    families = {p.split("/")[1] for m, p, code in check.seen if code == "default"}
    assert {"v1", "oai", "_emulator"} <= families  # errors of every surface were checked too


async def _native(check: Checker, emu: Harness, anon: httpx.AsyncClient) -> None:
    # live inference, streamed chat, images and their pre-signed content
    await check("POST", "/v1/inference/chat", json=CHAT_BODY)
    await check("POST", "/v1/inference/chat", json={**CHAT_BODY, "stream": True})
    await check("POST", "/v1/inference/chat", json={"model": GPT}, expect=422)
    await check("POST", "/v1/inference/chat", client=anon, json=CHAT_BODY, expect=401)
    await check("POST", "/v1/inference/generate", json={"model": GPT, "prompt": "Once"})
    embed = {"model": "openai/text-embedding-3-small", "input": ["a", "b"]}
    await check("POST", "/v1/inference/embed", json=embed)
    await check("POST", "/v1/inference/embed", json={**embed, "encoding_format": "base64"})
    image = {"model": "openai/dall-e-3", "prompt": "a cat"}
    images = await check("POST", "/v1/inference/images/generate", json=image)
    url = images.json()["data"]["data"][0]["url"]
    digest = urlsplit(url).path.rsplit("/", 1)[1].removesuffix(".png")
    png = "/v1/inference/images/{digest}.png"
    await check("GET", png, client=anon, params={"digest": digest, **signed(url)})
    await check("GET", png, client=anon, params={"digest": digest}, expect=403)
    # models
    await check("GET", "/v1/models", params={"modality": "chat", "limit": 2})
    await check("GET", "/v1/models", params={"modality": "nope"}, expect=422)
    await check("GET", "/v1/models/{slug}", params={"slug": "openai%2Fgpt-4o"})
    await check("GET", "/v1/models/{slug}", params={"slug": "no%2Fmodel"}, expect=404)
    # files
    file_id = await upload(check, "/v1/files", jsonl([chat_line("r1"), embed_line("r2")]))
    await check("GET", "/v1/files", params={"purpose": "batch", "limit": 1})
    await check("GET", "/v1/files/{file_id}", params={"file_id": file_id})
    await check("GET", "/v1/files/{file_id}/content", params={"file_id": file_id})
    await check("GET", "/v1/files/{file_id}", params={"file_id": "file_nope"}, expect=404)
    # batches: completed, cancelled, failed, and the errors
    body = {"input_file_url": f"scaigrid://file/{file_id}", "metadata": {"project": "demo"}}
    done = (await check("POST", "/v1/inference/batch", json=body)).json()["data"]
    await check("POST", "/v1/inference/batch", json={}, expect=422)
    slow = {"X-Emulator-Scenario": "slow-processing"}
    b64_body = {"input_file_base64": b64([chat_line("r1")])}
    slow_id = (await check("POST", "/v1/inference/batch", json=b64_body, headers=slow)).json()
    bad = {"X-Emulator-Scenario": "input-parse-failure"}
    await check("POST", "/v1/inference/batch", json=b64_body, headers=bad)
    await emu.settle()
    batch = "/v1/inference/batch/{batch_id}"
    await check("GET", "/v1/inference/batch", params={"limit": 5})
    await check("GET", "/v1/inference/batch", params={"status": "nope"}, expect=422)
    finished = (await check("GET", batch, params={"batch_id": done["id"]})).json()["data"]
    await check("POST", batch + "/cancel", params={"batch_id": slow_id["data"]["id"]})
    await check("POST", batch + "/cancel", params={"batch_id": done["id"]}, expect=409)
    await check("GET", batch, params={"batch_id": "batch_nope"}, expect=404)
    results = {"batch_id": done["id"], **signed(finished["results_url"])}
    await check("GET", batch + "/results", client=anon, params=results)
    await check("GET", batch + "/results", client=anon, params={"batch_id": done["id"]}, expect=403)
    await check("DELETE", "/v1/files/{file_id}", params={"file_id": file_id})


async def _openai(check: Checker, emu: Harness, anon: httpx.AsyncClient) -> None:
    chat = {"model": GPT, "messages": [{"role": "user", "content": "Hi"}]}
    await check("POST", "/oai/v1/chat/completions", json=chat)
    await check("POST", "/oai/v1/chat/completions", json={**chat, "stream": True})
    await check("POST", "/oai/v1/chat/completions", json={"model": GPT}, expect=400)
    await check("POST", "/oai/v1/chat/completions", client=anon, json=chat, expect=401)
    await check("POST", "/oai/v1/completions", json={"model": GPT, "prompt": "Once"})
    embed = {"model": "openai/text-embedding-3-small", "input": "a"}
    await check("POST", "/oai/v1/embeddings", json=embed)
    await check("GET", "/oai/v1/models")
    await check("GET", "/oai/v1/models/{model}", params={"model": "openai%2Fgpt-4o"})
    await check("GET", "/oai/v1/models/{model}", params={"model": "no%2Fmodel"}, expect=404)
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": chat}
    file_id = await upload(check, "/oai/v1/files", jsonl([line]))
    files = {"purpose": "batch", "order": "asc", "limit": 10}
    await check("GET", "/oai/v1/files", params=files)
    await check("GET", "/oai/v1/files", params={"order": "sideways"}, expect=400)
    await check("GET", "/oai/v1/files/{file_id}", params={"file_id": file_id})
    create = {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
              "completion_window": "24h"}  # fmt: skip
    made = (await check("POST", "/oai/v1/batches", json=create)).json()
    await check("POST", "/oai/v1/batches", json={**create, "endpoint": "/v2"}, expect=400)
    slow = {"X-Emulator-Scenario": "slow-processing"}
    other = (await check("POST", "/oai/v1/batches", json=create, headers=slow)).json()
    await emu.settle()
    await check("GET", "/oai/v1/batches", params={"limit": 2})
    batch = "/oai/v1/batches/{batch_id}"
    done = (await check("GET", batch, params={"batch_id": made["id"]})).json()
    await check("POST", batch + "/cancel", params={"batch_id": other["id"]})
    await check("GET", batch, params={"batch_id": "batch_nope"}, expect=404)
    content = "/oai/v1/files/{file_id}/content"
    await check("GET", content, params={"file_id": done["output_file_id"]})
    await check("GET", content, params={"file_id": "file-nope"}, expect=404)
    await check("DELETE", "/oai/v1/files/{file_id}", params={"file_id": file_id})


async def _webhooks(check: Checker, emu: Harness) -> None:
    url = "http://emulator.test/_emulator/sink/hooks"
    made = await check("POST", "/v1/webhooks", json={"url": url, "secret": "whsec_" + "0" * 32})
    hook = {"webhook_id": made.json()["data"]["id"]}
    await check("POST", "/v1/webhooks", json={"url": url}, expect=422)
    await check("GET", "/v1/webhooks", params={"limit": 10})
    await check("GET", "/v1/webhooks/{webhook_id}", params=hook)
    await check("PUT", "/v1/webhooks/{webhook_id}", params=hook, json={"max_retries": 3})
    await check("PUT", "/v1/webhooks/{webhook_id}", params=hook, json={"nope": 1}, expect=422)
    await check("POST", "/v1/webhooks/{webhook_id}/test", params=hook)
    await emu.submit([chat_line("r1")])
    await emu.settle()
    deliveries = "/v1/webhooks/{webhook_id}/deliveries"
    await check("GET", deliveries, params={**hook, "status": "success", "limit": 5})
    await check("GET", deliveries, params={**hook, "since": "yesterday"}, expect=422)
    await check("DELETE", "/v1/webhooks/{webhook_id}", params=hook)
    await check("GET", "/v1/webhooks/{webhook_id}", params=hook, expect=404)


async def _control(check: Checker, emu: Harness, anon: httpx.AsyncClient) -> None:
    for path in ("/health", "/_emulator/health", "/openapi.json"):
        await check("GET", path, client=anon)
    await check("GET", "/metrics", client=anon)
    await check("GET", "/_emulator/clock")
    await check("PUT", "/_emulator/clock", json={"mode": "frozen"})
    await check("PUT", "/_emulator/clock", json={"mode": "sideways"}, expect=422)
    await check("POST", "/_emulator/clock/advance", json={"seconds": 1})
    await check("POST", "/_emulator/clock/advance", json={"days": 1}, expect=422)
    await check("GET", "/_emulator/seed")
    await check("PUT", "/_emulator/seed", json={"seed": emu.core.settings.seed})
    await check("GET", "/_emulator/scenarios")
    await check("GET", "/_emulator/scenario")
    await check("PUT", "/_emulator/scenario", json={"name": "happy-path"})
    tenant = {"tenant": KEY}
    await check("GET", "/_emulator/tenants/{tenant}", params=tenant)
    scenario = "/_emulator/tenants/{tenant}/scenario"
    await check("PUT", scenario, params=tenant, json={"name": "flaky-backend"})
    await check("GET", scenario, params=tenant)
    await check("DELETE", scenario, params=tenant)
    await check("GET", "/_emulator/journal", params={"status": "4xx", "limit": 50})
    await check("GET", "/_emulator/journal", params={"status": "6xx"}, expect=422)
    await check("GET", "/_emulator/verdict", params={"min_poll_interval": 0})
    await check("GET", "/_emulator/state")
    sink = "/_emulator/sink/{name}"
    await check("POST", sink, client=anon, params={"name": "s"}, content=b"hello")
    await check("POST", sink, client=anon, params={"name": "s", "status": 503}, expect=503)
    await check("POST", sink, client=anon, params={"name": "s", "status": 99}, expect=422)
    await check("GET", sink, params={"name": "s"})
    await _dashboard(check, emu, anon, tenant)
    await check("POST", "/_emulator/reset", json={"tenant_id": "tenant_nobody"})
    await check("POST", "/_emulator/reset", json={"tenantId": "x"}, expect=422)


async def _dashboard(
    check: Checker, emu: Harness, anon: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    """The dashboard's files and the control routes it reads."""
    await check("GET", "/_emulator/changes")
    await check("GET", "/_emulator/ui", client=anon)
    for asset in ("app.js", "app.css"):
        await check("GET", "/_emulator/ui/{asset}", client=anon, params={"asset": asset})
    scenario = "/_emulator/tenants/{tenant}/scenario"
    await check("PUT", scenario, params=tenant, json={"name": "slow-processing"})
    batch = {**tenant, "batch_id": (await emu.submit([chat_line("x")]))["id"]}
    lines = "/_emulator/tenants/{tenant}/batches/{batch_id}/lines"
    await check("GET", lines, params={**batch, "limit": 10, "status": "pending"})
    await check("GET", lines, params={**batch, "status": "nope"}, expect=422)
    await check("POST", "/_emulator/tenants/{tenant}/batches/{batch_id}/cancel", params=batch)
    await check("DELETE", scenario, params=tenant)
    url = "http://127.0.0.1:9/hook"
    made = await emu.client.post("/v1/webhooks", json={"url": url, "secret": "whsec_" + "1" * 32})
    hook = {**tenant, "webhook_id": made.json()["data"]["id"]}
    deliveries = "/_emulator/tenants/{tenant}/webhooks/{webhook_id}/deliveries"
    await check("GET", deliveries, params={**hook, "limit": 5})
