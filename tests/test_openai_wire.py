"""The OpenAI surface's wire format, in process: every `/oai/v1` response body is checked against
the matching schema of OpenAI's spec (copied to tests/contracts/openai-schemas.json), and one
store is seen from both surfaces."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import CHAT, KEY, Harness, b64, chat_line, embed_line, jsonl
from jsonschema import Draft202012Validator
from webhook_helpers import SINK, events_of, register, sink_items

from emulator.batch.parsing import InputParser
from emulator.scenario.model import parse_scenario
from emulator.scenario.schema import ScenarioError
from emulator.status import OAI_STATUS, OaiStatus
from emulator.tenancy import open_tenant_id
from emulator.wire_oai import line_code

CONTRACT = json.loads(
    (Path(__file__).parent / "contracts" / "openai-schemas.json").read_text(encoding="utf-8")
)
OAI_CHAT = "/v1/chat/completions"
MODEL = "scailabs/poolnoodle-omni"


def _relaxed(node: Any) -> Any:
    """OpenAI's spec leaves out `null` where the API sends it: a property the schema does not
    require is `Optional[...] = None` in the SDK, and the real API sends it as null. So here such
    a property may be null; everything else is checked as the spec says."""
    if isinstance(node, list):
        return [_relaxed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _relaxed(v) for k, v in node.items()}
    if isinstance(out.get("properties"), dict):
        required = set(out.get("required", ()))
        out["properties"] = {
            name: spec if name in required else {"anyOf": [spec, {"type": "null"}]}
            for name, spec in out["properties"].items()
        }
    return out


SCHEMAS = _relaxed(CONTRACT["components"]["schemas"])
# an empty page has no first or last id: the spec requires strings, the emulator sends null
for _name in ("first_id", "last_id"):
    _spec = SCHEMAS["ListFilesResponse"]["properties"][_name]
    SCHEMAS["ListFilesResponse"]["properties"][_name] = {"anyOf": [_spec, {"type": "null"}]}


def check(name: str, body: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


#: (method, path pattern) -> the schema of a successful answer (None: not JSON)
ROUTE_SCHEMAS: list[tuple[str, str, str | None]] = [
    ("POST", r"/oai/v1/batches", "Batch"),
    ("GET", r"/oai/v1/batches", "ListBatchesResponse"),
    ("GET", r"/oai/v1/batches/[^/]+", "Batch"),
    ("POST", r"/oai/v1/batches/[^/]+/cancel", "Batch"),
    ("POST", r"/oai/v1/files", "OpenAIFile"),
    ("GET", r"/oai/v1/files", "ListFilesResponse"),
    ("GET", r"/oai/v1/files/[^/]+", "OpenAIFile"),
    ("DELETE", r"/oai/v1/files/[^/]+", "DeleteFileResponse"),
    ("GET", r"/oai/v1/files/[^/]+/content", None),
    ("POST", r"/oai/v1/chat/completions", "CreateChatCompletionResponse"),
    ("POST", r"/oai/v1/completions", "CreateCompletionResponse"),
    ("POST", r"/oai/v1/embeddings", "CreateEmbeddingResponse"),
    ("GET", r"/oai/v1/models", "ListModelsResponse"),
    ("GET", r"/oai/v1/models/.+", "Model"),
]


class Checked:
    """Every answer of an /oai/v1 client, checked against its schema as it arrives."""

    def __init__(self) -> None:
        self.schemas: set[str] = set()

    async def __call__(self, resp: httpx.Response) -> None:
        await resp.aread()
        assert re.fullmatch(r"req_[0-9a-f]{20}", resp.headers["x-request-id"])
        name = self.schema_of(resp)
        if name is None:
            return
        if resp.headers["content-type"].startswith("text/event-stream"):
            name = "CreateChatCompletionStreamResponse"
            chunks = re.findall(r"^data: (.*)$", resp.text, re.MULTILINE)
            assert chunks[-1] == "[DONE]"
            for chunk in chunks[:-1]:
                check(name, orjson.loads(chunk))
        else:
            check(name, resp.json())
        self.schemas.add(name)

    @staticmethod
    def schema_of(resp: httpx.Response) -> str | None:
        if resp.status_code >= 400:
            return "ErrorResponse"
        method, path = resp.request.method, resp.request.url.path
        for m, pattern, name in ROUTE_SCHEMAS:
            if m == method and re.fullmatch(pattern, path):
                return name
        raise AssertionError(f"no schema for {method} {path}")


@pytest.fixture
async def oai(emu: Harness) -> AsyncIterator[httpx.AsyncClient]:
    checked = Checked()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(emu.app),
        base_url="http://emulator.test/oai/v1",
        headers={"Authorization": f"Bearer {KEY}"},
        event_hooks={"response": [checked]},
    ) as client:
        client.checked = checked  # type: ignore[attr-defined]
        yield client


def oai_line(custom_id: str, **body: Any) -> dict[str, Any]:
    line = chat_line(custom_id, **body)
    return {**line, "url": OAI_CHAT}


async def upload(oai: httpx.AsyncClient, lines: list[Any], purpose: str = "batch") -> str:
    resp = await oai.post(
        "/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": purpose}
    )
    assert resp.status_code == 200, resp.text
    file_id: str = resp.json()["id"]
    return file_id


async def create(oai: httpx.AsyncClient, lines: list[Any], **headers: str) -> dict[str, Any]:
    body = {"input_file_id": await upload(oai, lines), "endpoint": OAI_CHAT}
    resp = await oai.post("/batches", json={**body, "completion_window": "24h"}, headers=headers)
    assert resp.status_code == 200, resp.text
    batch: dict[str, Any] = resp.json()
    return batch


async def get(oai: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    resp = await oai.get(f"/batches/{batch_id}")
    assert resp.status_code == 200, resp.text
    batch: dict[str, Any] = resp.json()
    return batch


async def use(emu: Harness, yaml: str) -> None:
    resp = await emu.client.put(
        f"/_emulator/tenants/{open_tenant_id(KEY)}/scenario", json={"yaml": yaml}
    )
    assert resp.status_code == 200, resp.text


# --- every route and every status, against the spec --------------------------------------------


async def test_every_route_and_status_matches_openais_schemas(
    emu: Harness, oai: httpx.AsyncClient, tmp_path: Path
) -> None:
    await use(emu, "name: s\nprocessing: {start_delay: 10s, latency: 10s, finalize: 30s}\n")
    statuses: set[str] = set()
    steps = await create(oai, [oai_line("a"), oai_line("b")])  # a at +20 s, b at +30 s
    for seconds in (0, 10, 25, 30):  # validating, in_progress, finalizing, completed
        await emu.advance(seconds)
        statuses.add((await get(oai, steps["id"]))["status"])
    assert statuses == {"validating", "in_progress", "finalizing", "completed"}

    await use(emu, "name: c\nprocessing: {latency: 10s, cancel_delay: 30s}\n")
    slow = await create(oai, [oai_line(f"r{i}") for i in range(5)])
    await emu.advance(5)
    statuses.add((await oai.post(f"/batches/{slow['id']}/cancel")).json()["status"])
    await emu.advance(30)
    statuses.add((await get(oai, slow["id"]))["status"])

    expiring = tmp_path / "expiring.yaml"
    expiring.write_text("name: e\nprocessing: {latency: 2h}\nbatch: {window: 1h}\n")
    expired = await create(oai, [oai_line("late")], **{"X-Emulator-Scenario": str(expiring)})
    await use(emu, "name: f\nbatch: {fail_input: {message: broken}}\n")
    failed = await create(oai, [oai_line("x")])
    await emu.advance(3600)
    statuses |= {(await get(oai, b["id"]))["status"] for b in (expired, failed)}
    assert statuses == {s.value for s in OaiStatus}

    listed = (await oai.get("/batches", params={"limit": 2})).json()
    assert listed["has_more"] is True and listed["last_id"] == listed["data"][-1]["id"]
    files = (await oai.get("/files", params={"purpose": "batch_output"})).json()["data"]
    assert files and all(f["purpose"] == "batch_output" for f in files)
    assert (await oai.get(f"/files/{files[0]['id']}")).status_code == 200
    assert (await oai.get(f"/files/{files[0]['id']}/content")).status_code == 200
    assert (await oai.delete(f"/files/{await upload(oai, [{}])}")).status_code == 200
    assert (await oai.get("/files", params={"purpose": "vision"})).json()["first_id"] is None

    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    assert (await oai.post("/chat/completions", json=chat)).status_code == 200
    assert (await oai.post("/chat/completions", json={**chat, "stream": True})).status_code == 200
    await oai.post("/completions", json={"model": MODEL, "prompt": "Once"})
    await oai.post("/embeddings", json={"model": "openai/text-embedding-3-small", "input": "a"})
    await oai.get("/models")
    await oai.get("/models/openai%2Fgpt-4o")
    assert (await oai.get("/batches/batch_nope")).status_code == 404
    assert oai.checked.schemas == {  # type: ignore[attr-defined]
        name for _, _, name in ROUTE_SCHEMAS if name
    } | {"ErrorResponse", "CreateChatCompletionStreamResponse"}


# --- one store, two views ----------------------------------------------------------------------


async def test_a_native_batch_is_seen_by_openai_with_the_same_counts(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    native = await emu.submit(
        [chat_line("a"), chat_line("b", model="nobody/none"), embed_line("c")]
    )
    await emu.settle()
    mine = await emu.batch(native["id"])
    seen = await get(oai, native["id"])
    assert seen["status"] == "completed" and seen["endpoint"] == "*"
    assert seen["input_file_id"] == mine["input_file_id"]
    counts = seen["request_counts"]
    assert (counts["total"], counts["completed"], counts["failed"]) == (
        mine["total_count"],
        mine["completed_count"],
        mine["failed_count"],
    )
    assert seen["completed_at"] == int(emu.core.clock.now())
    assert native["id"] in [b["id"] for b in (await oai.get("/batches")).json()["data"]]
    output = (await oai.get(f"/files/{seen['output_file_id']}/content")).text
    native_ok = [r["response"] for r in await emu.results(native["id"]) if r["status"] == "ok"]
    assert [orjson.loads(x)["response"]["body"] for x in output.splitlines()] == native_ok


async def test_an_openai_batch_is_seen_natively_and_files_cross_over(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    resp = await emu.client.post(
        "/v1/files", files={"file": ("n.jsonl", jsonl([oai_line("a"), oai_line("b")]))}
    )
    native_file = resp.json()["data"]["id"]
    made = await oai.post(
        "/batches",
        json={"input_file_id": native_file, "endpoint": OAI_CHAT, "completion_window": "4h"},
    )
    batch = made.json()
    await emu.settle()
    native = await emu.batch(batch["id"])
    assert native["input_file_url"] == f"scaigrid://file/{native_file}"
    assert native["endpoint_completion_window"] == "4h"
    assert (native["status"], native["completed_count"]) == ("completed", 2)
    assert [r["custom_id"] for r in await emu.results(batch["id"])] == ["a", "b"]

    oai_file = await upload(oai, [chat_line("n1")])  # native lines, uploaded the OpenAI way
    resp = await emu.client.post(
        "/v1/inference/batch", json={"input_file_url": f"scaigrid://file/{oai_file}"}
    )
    assert resp.status_code == 200, resp.text
    await emu.settle()
    assert (await emu.batch(resp.json()["data"]["id"]))["completed_count"] == 1


async def test_the_native_view_stays_processing_while_finalizing(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    await use(emu, "name: f\nprocessing: {finalize: 1m}\n")
    batch = await create(oai, [oai_line("a")])
    await emu.settle()
    assert (await get(oai, batch["id"]))["status"] == "finalizing"
    assert (await emu.batch(batch["id"]))["status"] == "processing"
    await emu.advance(60)
    done = await get(oai, batch["id"])
    assert done["status"] == "completed" and done["completed_at"] == done["finalizing_at"] + 60
    assert (await emu.batch(batch["id"]))["status"] == "completed"


async def test_a_native_cancel_of_a_pending_batch_is_cancelled_on_both(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    await use(emu, "name: wait\nprocessing: {start_delay: 1m, cancel_delay: 1m}\n")
    batch = await create(oai, [oai_line("a"), oai_line("b")])
    await emu.client.post(f"/v1/inference/batch/{batch['id']}/cancel")
    seen = await get(oai, batch["id"])  # nothing was in flight: no time to drain
    assert seen["status"] == "cancelled" and seen["cancelling_at"] == seen["cancelled_at"]
    assert seen["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    assert seen["output_file_id"] is None
    errors = (await oai.get(f"/files/{seen['error_file_id']}/content")).text.splitlines()
    assert [orjson.loads(x)["error"]["code"] for x in errors] == ["batch_cancelled"] * 2


# --- validation and errors ---------------------------------------------------------------------


async def test_a_bad_input_file_fails_with_line_numbered_errors(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    lines = [
        oai_line("a"),
        b"{not json",
        oai_line("a"),
        {**embed_line("e"), "url": "/v1/embeddings"},
        {**oai_line("m"), "method": "GET"},
    ]
    batch = await create(oai, lines)
    await emu.settle()
    failed = await get(oai, batch["id"])
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert failed["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert [(e["line"], e["code"]) for e in failed["errors"]["data"]] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "url_mismatch"),
        (5, "invalid_method"),
    ]
    assert failed["output_file_id"] is None and failed["error_file_id"] is None


async def test_every_parse_problem_has_an_openai_code() -> None:
    async def one(raw: bytes) -> AsyncIterator[bytes]:
        yield raw

    bad = [b"[]", b"{}", b'{"custom_id": "a", "method": "PUT"}', b"{"]
    bad += [orjson.dumps({**oai_line("b"), "url": "/v1/nope"})]
    bad += [orjson.dumps({**oai_line("c"), "body": 1})]

    async def parse(raw: bytes) -> InputParser:
        parser = InputParser(OAI_CHAT)
        async for _ in parser.rows(one(raw)):
            pass
        return parser

    for raw in bad:
        parsed = await parse(raw + b"\n")
        assert line_code(parsed.problems[0]["message"]) != "invalid_input", raw
    assert line_code((await parse(b"\n")).error()["message"]) == "empty_file"


async def test_create_refuses_bad_parameters_with_400(oai: httpx.AsyncClient) -> None:
    file_id = await upload(oai, [oai_line("a")])
    good = {"input_file_id": file_id, "endpoint": OAI_CHAT, "completion_window": "24h"}
    for change, field in (
        ({"endpoint": "/v1/moderations"}, "endpoint"),
        ({"completion_window": "2d"}, "completion_window"),
        ({"input_file_id": "file-missing"}, "input_file_id"),
        ({"metadata": {"k": 1}}, "metadata"),
    ):
        resp = await oai.post("/batches", json={**good, **change})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == field
    for params in ({"limit": "0"}, {"after": "batch_nope"}):
        assert (await oai.get("/batches", params=params)).status_code == 400
    assert (await oai.get("/files", params={"order": "sideways"})).status_code == 400
    resp = await oai.post("/files", files={"file": ("a", b"x")})  # OpenAI requires a purpose
    assert resp.json()["error"]["param"] == "purpose"


async def test_errors_take_openais_body_everywhere_under_oai(emu: Harness) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(emu.app), base_url="http://emulator.test"
    ) as anon:
        unauthenticated = await anon.get("/oai/v1/models")
        assert unauthenticated.status_code == 401
        assert set(unauthenticated.json()["error"]) == {"message", "type", "param", "code"}
        check("ErrorResponse", (await anon.get("/oai/v1/nowhere")).json())
        assert (await anon.get("/oai/v1/nowhere")).status_code == 404
        assert (await anon.delete("/oai/v1/batches")).status_code == 405
    await use(
        emu,
        'name: o\napi_faults:\n  - match: {route: "/v1/*", calls: [1]}\n'
        "    error: {code: MODEL_UNAVAILABLE, status: 503, retry_after: 7}\n",
    )
    async with emu.client_for(KEY) as client:
        fault = await client.get("/oai/v1/batches")  # a /v1/* rule covers the /oai mount
        assert fault.status_code == 503 and fault.headers["retry-after"] == "7"
        assert fault.json()["error"]["type"] == "server_error"
        check("ErrorResponse", fault.json())


async def test_a_deleted_output_file_is_gone_but_its_batch_keeps_the_id(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    batch = await create(oai, [oai_line("a")])
    await emu.settle()
    output = (await get(oai, batch["id"]))["output_file_id"]
    assert (await oai.delete(f"/files/{output}")).json()["deleted"] is True
    assert (await oai.get(f"/files/{output}")).status_code == 404
    assert (await get(oai, batch["id"]))["output_file_id"] == output
    assert output not in [f["id"] for f in (await oai.get("/files")).json()["data"]]


# --- the status table and the scenario language ------------------------------------------------


def test_the_status_table_covers_openais_eight_statuses() -> None:
    assert set(OAI_STATUS.values()) == set(OaiStatus)
    assert len(OaiStatus) == 8


def test_finalize_and_cancel_delay_are_durations_in_the_scenario_language() -> None:
    s = parse_scenario("processing: {finalize: 2m, cancel_delay: 90s}\n", "t.yaml")
    assert (s.finalize, s.cancel_delay) == (120.0, 90.0)
    plan = s.plan(0, "batch_x")
    assert (plan.finalize, plan.cancel_delay) == (120.0, 90.0)
    with pytest.raises(ScenarioError, match=r"t\.yaml: processing\.finalize \(line 2\): must be"):
        parse_scenario("processing:\n  finalize: soon\n", "t.yaml")


async def test_native_submit_keeps_its_routes(emu: Harness) -> None:
    """A native batch takes native routes only, as before; OpenAI paths are for OpenAI batches."""
    resp = await emu.client.post(
        "/v1/inference/batch", json={"input_file_base64": b64([oai_line("a")])}
    )
    await emu.settle()
    assert (await emu.batch(resp.json()["data"]["id"]))["status"] == "failed"
    assert CHAT == "/v1/inference/chat"


async def test_a_cancel_outlasting_the_window_after_every_request_ran_ends_cancelled(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    await use(emu, "name: x\nprocessing: {finalize: 1h, cancel_delay: 2h}\nbatch: {window: 1h}\n")
    batch = await create(oai, [oai_line("a")])
    await emu.settle()
    assert (await get(oai, batch["id"]))["status"] == "finalizing"
    assert (await oai.post(f"/batches/{batch['id']}/cancel")).json()["status"] == "cancelling"
    await emu.advance(3600)  # the window closes: nothing is left to expire
    assert (await get(oai, batch["id"]))["status"] == "cancelling"
    assert await emu.core.worker.run_due() == emu.core.clock.now() + 3600
    await emu.advance(3600)
    done = await get(oai, batch["id"])
    assert done["status"] == "cancelled" and done["request_counts"]["completed"] == 1
    assert done["cancelled_at"] == done["cancelling_at"] + 7200


async def test_an_openai_batch_fires_the_same_webhook_event(
    emu: Harness, oai: httpx.AsyncClient
) -> None:
    """Webhooks follow the one store: a batch made on /oai/v1 ends in the native event."""
    await register(emu, SINK + "oai")
    batch = await create(oai, [oai_line("r1"), oai_line("r2")])
    await emu.settle()
    [event] = events_of(await sink_items(emu, "oai"))
    assert event["event_type"] == "batch.completed"
    payload = event["payload"]
    assert (payload["batch_id"], payload["completed_count"]) == (batch["id"], 2)
    assert (await get(oai, batch["id"]))["status"] == "completed"
