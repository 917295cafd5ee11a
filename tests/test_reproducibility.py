"""With a seed and a frozen clock, two runs of the same script produce byte-identical responses,
request ids, resource ids and result files; another seed produces different ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from conftest import Harness, b64, chat_line, embed_line, jsonl, key

from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
Exchange = tuple[str, int, list[tuple[str, str]], bytes]

LATENCY = """\
name: steady
processing:
  start_delay: 10s
  latency: {distribution: uniform, min: 1s, max: 20s}
  concurrency: 3
"""
FAULTS = """\
name: faulty
faults:
  - match: {custom_id: "q-1*"}
    error: {code: BACKEND_TIMEOUT, message: "too slow"}
  - match: {probability: 0.3}
    error: {code: BACKEND_ERROR, message: "upstream 500"}
canned:
  - match: {content: "*weather*"}
    response: "Sunny."
"""
RATE = "rate_limit: {requests: 3, per: 60s}\n"


def lines(prefix: str, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(embed_line(f"{prefix}-{i}", [f"text {i}", "another"]))
        else:
            topic = "the weather" if i % 5 == 0 else f"topic {i}"
            out.append(chat_line(f"{prefix}-{i}", f"Tell me about {topic}", max_tokens=60))
    return out


class Script:
    """Runs API calls and records every exchange: (what, status, headers, body)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.log: list[Exchange] = []

    async def call(self, what: str, client: httpx.AsyncClient, method: str, url: str,
                   **kw: Any) -> httpx.Response:  # fmt: skip
        resp = await client.request(method, url, **kw)
        headers = sorted((k.lower(), v) for k, v in resp.headers.items())
        self.log.append((what, resp.status_code, headers, resp.content))
        return resp


async def script(h: Harness, tmp_path: Path) -> list[Exchange]:
    (tmp_path / "latency.yaml").write_text(LATENCY, encoding="utf-8")
    (tmp_path / "faults.yaml").write_text(FAULTS, encoding="utf-8")
    s = Script(h)
    c = h.client
    admin = h.client_for(None)
    limited = h.client_for(key("limited"))
    try:
        files = {"file": ("requests.jsonl", jsonl(lines("f", 12)), "application/jsonl")}
        # a fixed multipart boundary: the journal keeps the request body, boundary and all
        fixed = {"Content-Type": "multipart/form-data; boundary=fixed-boundary"}
        up = await s.call("upload", c, "POST", "/v1/files", files=files, data={"purpose": "batch"},
                          headers=fixed)  # fmt: skip
        file_id = up.json()["data"]["id"]
        await s.call("file", c, "GET", f"/v1/files/{file_id}")
        a = await s.call(
            "submit latency", c, "POST", "/v1/inference/batch",
            json={"input_file_url": f"scaigrid://file/{file_id}", "metadata": {"run": "a"}},
            headers={"X-Emulator-Scenario": str(tmp_path / "latency.yaml")},
        )  # fmt: skip
        b = await s.call(
            "submit faults", c, "POST", "/v1/inference/batch",
            json={"input_file_base64": b64(lines("q", 30)), "endpoint_completion_window": "1h"},
            headers={"X-Emulator-Scenario": str(tmp_path / "faults.yaml")},
        )  # fmt: skip
        ids = [a.json()["data"]["id"], b.json()["data"]["id"]]
        await s.call("advance", admin, "POST", "/_emulator/clock/advance", json={"seconds": 25})
        for batch_id in ids:
            await s.call("status", c, "GET", f"/v1/inference/batch/{batch_id}")
        await s.call("list", c, "GET", "/v1/inference/batch", params={"limit": 1})
        await s.call("advance", admin, "POST", "/_emulator/clock/advance", json={"minutes": 5})
        await s.call("list all", c, "GET", "/v1/inference/batch")
        for batch_id in ids:
            status = await s.call("status", c, "GET", f"/v1/inference/batch/{batch_id}")
            url = status.json()["data"]["results_url"]
            assert url, status.text
            await s.call("results", admin, "GET", url)
        await s.call("chat", c, "POST", "/v1/inference/chat",
                     json=chat_line("x", "What is the weather?")["body"])  # fmt: skip
        await s.call("chat", c, "POST", "/v1/inference/chat",
                     json=chat_line("x", "Write a haiku", temperature=0.7)["body"])  # fmt: skip
        await s.call("stream", c, "POST", "/v1/inference/chat",
                     json={**chat_line("x", "Count to five")["body"], "stream": True})  # fmt: skip
        await s.call("embed", c, "POST", "/v1/inference/embed", json=embed_line("e")["body"])
        await s.call("not found", c, "GET", "/v1/inference/batch/batch_nope")
        await s.call("bad model", c, "POST", "/v1/inference/chat",
                     json=chat_line("x", model="nobody/nothing")["body"])  # fmt: skip
        await s.call("cancel final", c, "POST", f"/v1/inference/batch/{ids[0]}/cancel")
        tenant = open_tenant_id(key("limited"))
        await s.call("rate scenario", admin, "PUT", f"/_emulator/tenants/{tenant}/scenario",
                     json={"yaml": RATE})  # fmt: skip
        for _ in range(4):
            await s.call("limited", limited, "GET", "/v1/models")
        await s.call("journal", admin, "GET", "/_emulator/journal", params={"path": "/v1/"})
        await s.call("state", admin, "GET", "/_emulator/state")
    finally:
        await admin.aclose()
        await limited.aclose()
    return s.log


def summary(log: list[Exchange]) -> list[tuple[str, int]]:
    return [(what, status) for what, status, _, _ in log]


async def test_two_fresh_runs_with_one_seed_are_byte_identical(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    first = await script(await make_emu(seed=7), tmp_path)
    second = await script(await make_emu(seed=7), tmp_path)
    assert summary(first) == summary(second)
    for one, two in zip(first, second, strict=True):
        assert one == two, one[0]
    statuses = dict(summary(first))
    assert statuses["not found"] == 404 and statuses["bad model"] == 404
    assert statuses["cancel final"] == 409
    assert [st for what, st in summary(first) if what == "limited"] == [200, 200, 200, 429]
    results = [body for what, _, _, body in first if what == "results"]
    assert b'"BACKEND_TIMEOUT"' in results[1] and b'"BACKEND_ERROR"' in results[1]
    assert b"Sunny." in results[1]


async def test_another_seed_gives_other_bytes(make_emu: MakeEmu, tmp_path: Path) -> None:
    seven = await script(await make_emu(seed=7), tmp_path)
    eight = await script(await make_emu(seed=8), tmp_path)
    assert summary(seven) == summary(eight)
    differing = {what for (what, _, h7, b7), (_, _, h8, b8) in zip(seven, eight, strict=False)
                 if (h7, b7) != (h8, b8)}  # fmt: skip
    assert {"upload", "submit latency", "submit faults", "results", "chat", "embed"} <= differing
    request_ids = [dict(h)["x-request-id"] for _, _, h, _ in seven]
    assert not set(request_ids) & {dict(h)["x-request-id"] for _, _, h, _ in eight}
    results7 = [b for what, _, _, b in seven if what == "results"]
    results8 = [b for what, _, _, b in eight if what == "results"]
    assert results7 != results8


# --- a tenant's ids are its own -------------------------------------------------------------------

FLAKY = "name: flaky\nfaults:\n  - match: {probability: 0.3}\n    error: {code: BACKEND_ERROR}\n"


async def tenant_story(h: Harness, client: httpx.AsyncClient) -> dict[str, Any]:
    """A file, a webhook and a batch under a probabilistic fault: their ids, and which requests
    failed with which code."""
    files = {"file": ("in.jsonl", jsonl(lines("s", 3)), "application/jsonl")}
    file_id = (await client.post("/v1/files", files=files)).json()["data"]["id"]
    hook = {"url": "http://emulator.test/_emulator/sink/story", "secret": "whsec_story"}
    webhook_id = (await client.post("/v1/webhooks", json=hook)).json()["data"]["id"]
    resp = await client.post(
        "/v1/inference/batch",
        json={"input_file_base64": b64(lines("q", 40))},
        headers={"X-Emulator-Scenario": FLAKY},
    )
    batch = resp.json()["data"]
    await h.settle()
    url = (await h.batch(batch["id"], client))["results_url"]
    async with h.client_for(None) as anon:
        rows = [orjson.loads(line) for line in (await anon.get(url)).content.splitlines()]
    failed = {r["custom_id"]: r["error"]["code"] for r in rows if r["status"] == "error"}
    return {"ids": (file_id, webhook_id, batch["id"]), "failed": failed}


async def test_a_tenants_ids_and_faults_do_not_depend_on_other_tenants(
    make_emu: MakeEmu,
) -> None:
    alone = await make_emu()
    mine = await tenant_story(alone, alone.client)
    crowded = await make_emu()
    async with crowded.client_for(key("busy")) as busy:
        await tenant_story(crowded, busy)  # another tenant made objects of every kind first
        await crowded.submit(lines("b", 5), client=busy)
        await crowded.advance(3600)
    assert await tenant_story(crowded, crowded.client) == mine
    assert 0 < len(mine["failed"]) < 40 and set(mine["failed"].values()) == {"BACKEND_ERROR"}
