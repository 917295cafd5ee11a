"""The batch API (/v1/inference/batch): submit, validation, input sources, limits, parsing,
per-request errors, results, listing, cancel, window expiry, pricing, tenancy and durability.

Everything runs in process on the emulator's frozen clock; the only sockets are a moto S3 server on
127.0.0.1. No test sleeps: time moves with `emu.advance(seconds)`.

Determinism: the core's background worker task wakes on every submit and clock move, so a batch
submitted on the happy path may already be running by the next request. Tests that need a batch
to stay `pending` call `hold(emu)`, which stops that task; from then on only `emu.settle()` (or
`emu.advance()`) processes batches, exactly when the test says so.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import pytest
from conftest import (
    CHAT,
    EMBED,
    KEY,
    START,
    Harness,
    assert_error,
    b64,
    chat_line,
    embed_line,
    jsonl,
    key,
)
from s3_fixtures import s3_client

import emulator.batch.worker
from emulator.batch.service import MAX_BASE64_BYTES
from emulator.records import BatchRecord, RequestRecord
from emulator.scenario.plan import Plan
from emulator.settings import Settings
from emulator.tenancy import open_tenant_id
from tests.test_files_api import ISO_MS, upload_ok

MakeEmu = Callable[..., Awaitable[Harness]]
GENERATE = "/v1/inference/generate"
IMAGES = "/v1/inference/images/generate"
BATCH = "/v1/inference/batch"
CHAT_MODEL = "scailabs/poolnoodle-omni"
EMBED_MODEL = "openai/text-embedding-3-small"
WINDOWS = {"24h": 24 * 3600, "4h": 4 * 3600, "1h": 3600}
DISCOUNTS = {"24h": "0.50", "4h": "0.30", "1h": "0.15"}

#: The contract's batch object example, verbatim (section 1, "Batch object").
CONTRACT_BATCH = orjson.loads(
    """{"id": "batch_...", "object": "batch", "status": "pending",
 "endpoint_completion_window": "24h", "input_file_url": "scaigrid://file/file-...",
 "input_file_id": "file-...", "metadata": {"project": "x"},
 "total_count": 3, "completed_count": 0, "failed_count": 0,
 "created_at": "...", "started_at": null, "completed_at": null, "cancelled_at": null,
 "failed_at": null, "expires_at": "...",
 "error": null, "results_url": null, "results_expires_at": null,
 "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
 "cost": {"currency": "USD", "live": "0.000000", "discount": "0.50", "amount": "0.000000"}}"""
)
#: keys whose example value is null: an ISO timestamp, an object or a URL once set
NULLABLE = {
    "started_at": str,
    "completed_at": str,
    "cancelled_at": str,
    "failed_at": str,
    "error": dict,
    "results_url": str,
    "results_expires_at": str,
}
TIMESTAMPS = (
    "created_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "failed_at",
    "expires_at",
    "results_expires_at",
)


# --- helpers -------------------------------------------------------------------------------------


def ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def at(seconds: float) -> str:
    """The wire timestamp `seconds` after the harness's clock start."""
    t = START + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


async def hold(emu: Harness) -> None:
    """Stop the background worker task: batches now run only when the test settles."""
    await emu.core.worker.stop()


async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post(BATCH, json=body)


async def run(emu: Harness, lines: list[Any], **body: Any) -> tuple[dict[str, Any], list[Any]]:
    """Submit, settle, and return the final batch and its results."""
    b = await emu.submit(lines, **body)
    await emu.settle()
    final = await emu.batch(b["id"])
    return final, await emu.results(b["id"])


def assert_validation(resp: httpx.Response, field: str | None) -> dict[str, Any]:
    error = assert_error(resp, 422, "VALIDATION_ERROR")
    assert error["details"], error
    if field is not None:
        assert any(d.get("field") == field for d in error["details"]), error
    return error


def assert_quota(resp: httpx.Response, *fragments: str) -> None:
    error = assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert "retry_after" not in error
    assert "retry-after" not in resp.headers
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


def assert_batch_shape(b: dict[str, Any]) -> None:
    """Exactly the contract's keys, each with the contract's type."""
    assert set(b) == set(CONTRACT_BATCH)
    for name, example in CONTRACT_BATCH.items():
        value = b[name]
        if example is None:
            assert value is None or isinstance(value, NULLABLE[name]), (name, value)
        else:
            assert type(value) is type(example), (name, value)
    assert set(b["usage"]) == set(CONTRACT_BATCH["usage"])
    assert all(type(v) is int for v in b["usage"].values())
    assert set(b["cost"]) == set(CONTRACT_BATCH["cost"])
    assert all(type(v) is str for v in b["cost"].values())
    assert b["id"].startswith("batch_")
    assert b["object"] == "batch"
    assert b["status"] in ("pending", "processing", "completed", "failed", "cancelled")
    for name in TIMESTAMPS:
        assert b[name] is None or ISO_MS.match(b[name]), (name, b[name])


def assert_counts_add_up(b: dict[str, Any]) -> None:
    assert b["completed_count"] + b["failed_count"] == b["total_count"]


def gen_line(custom_id: str, prompt: str = "Once upon a time", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": GENERATE,
        "body": {"model": CHAT_MODEL, "prompt": prompt, "max_tokens": 50, **body},
    }


def image_line(custom_id: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": IMAGES,
        "body": {"model": "openai/dall-e-3", "prompt": "A red kite", **body},
    }


def line(custom_id: str, url: str, body: Any, method: str = "POST") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": method, "url": url, "body": body}


@dataclass
class SlowPlan(Plan):
    """Every request takes `seconds` once its lane is free (the default plan takes none)."""

    seconds: float = 1000.0

    def latency(self, idx: int, request: RequestRecord | None) -> float:
        return self.seconds


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def use_plan(monkeypatch: pytest.MonkeyPatch, emu: Harness, plan: Plan) -> None:
    def plan_for(batch: BatchRecord) -> Plan:
        return plan

    monkeypatch.setattr(emu.core.scenarios, "plan_for", plan_for)


# --- submit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["24h", "4h", "1h"])
async def test_submit_base64_answers_the_contract_batch_object(emu: Harness, window: str) -> None:
    await hold(emu)
    lines = [chat_line("req-1"), chat_line("req-2"), embed_line("req-3")]
    resp = await post(
        emu.client,
        {
            "input_file_base64": b64(lines),
            "endpoint_completion_window": window,
            "metadata": {"project": "x"},
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"].startswith("req_")
    body = resp.json()
    assert body["status"] == "ok"
    b = body["data"]
    assert_batch_shape(b)
    assert b["status"] == "pending"
    assert b["endpoint_completion_window"] == window
    assert b["metadata"] == {"project": "x"}
    assert b["total_count"] == 3
    assert (b["completed_count"], b["failed_count"]) == (0, 0)
    assert b["input_file_id"].startswith("file-")
    assert b["input_file_url"] == f"scaigrid://file/{b['input_file_id']}"
    assert b["created_at"] == at(0)
    assert ts(b["expires_at"]) - ts(b["created_at"]) == timedelta(seconds=WINDOWS[window])
    for name in ("started_at", "completed_at", "cancelled_at", "failed_at", "error"):
        assert b[name] is None
    assert b["results_url"] is None and b["results_expires_at"] is None
    assert b["usage"] == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    assert b["cost"] == {
        "currency": "USD",
        "live": "0.000000",
        "discount": DISCOUNTS[window],
        "amount": "0.000000",
    }
    # the inline input became a file of the tenant's, byte for byte
    f = (await emu.client.get(f"/v1/files/{b['input_file_id']}")).json()["data"]
    assert f["sha256"] == hashlib.sha256(jsonl(lines)).hexdigest()
    assert f["line_count"] == 3

    await emu.advance(5)
    done = await emu.batch(b["id"])
    assert_batch_shape(done)
    assert done["status"] == "completed"
    assert (done["completed_count"], done["failed_count"], done["total_count"]) == (3, 0, 3)
    assert done["started_at"] is not None and done["completed_at"] is not None
    assert done["results_url"]
    assert done["results_expires_at"] == at(5 + 3600)  # one hour from now
    assert done["expires_at"] == b["expires_at"]


async def test_default_window_is_24h_and_metadata_defaults_to_empty(emu: Harness) -> None:
    b = await emu.submit([chat_line("a")])
    assert b["endpoint_completion_window"] == "24h"
    assert b["metadata"] == {}
    assert ts(b["expires_at"]) - ts(b["created_at"]) == timedelta(hours=24)


async def test_submit_from_an_uploaded_file(emu: Harness) -> None:
    content = jsonl([chat_line("a"), chat_line("b")])
    f = await upload_ok(emu.client, content)
    resp = await post(emu.client, {"input_file_url": f["url"], "endpoint_completion_window": "1h"})
    assert resp.status_code == 200, resp.text
    b = resp.json()["data"]
    assert_batch_shape(b)
    assert b["input_file_url"] == f"scaigrid://file/{f['id']}"
    assert b["input_file_id"] == f["id"]
    assert b["total_count"] == 2
    assert ts(b["expires_at"]) - ts(b["created_at"]) == timedelta(hours=1)
    await emu.settle()
    done = await emu.batch(b["id"])
    assert done["status"] == "completed"
    assert_counts_add_up(done)
    assert [r["custom_id"] for r in await emu.results(b["id"])] == ["a", "b"]
    # the user's file is reused, not copied
    resp = await emu.client.get("/v1/files")
    assert [x["id"] for x in resp.json()["data"]["items"]] == [f["id"]]


# --- validation ----------------------------------------------------------------------------------

GOOD = b64([chat_line("a")])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input_file_base64": GOOD, "input_file_url": "scaigrid://file/file-x"}, "input_file_url"),
        ({}, "input_file_url"),
        ({"endpoint_completion_window": "24h"}, "input_file_url"),
        ({"input_file_base64": None, "input_file_url": None}, "input_file_url"),
        ({"input_file_base64": GOOD, "endpoint_completion_window": "2h"}, None),
        ({"input_file_base64": GOOD, "endpoint_completion_window": "24H"}, None),
        ({"input_file_base64": GOOD, "endpoint_completion_window": 24}, None),
        ({"input_file_url": 123}, "input_file_url"),
        ({"input_file_url": ["scaigrid://file/x"]}, "input_file_url"),
        ({"input_file_url": False}, "input_file_url"),
        ({"input_file_base64": 123}, "input_file_base64"),
        ({"input_file_base64": "not base64!!"}, "input_file_base64"),
        ({"input_file_base64": "abc"}, "input_file_base64"),  # bad padding
        ({"input_file_base64": "é"}, "input_file_base64"),
        ({"input_file_base64": GOOD, "metadata": "x"}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": ["x"]}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {"k" * 65: "v"}}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {"k": 1}}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {"k": None}}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {"k": {"nested": "x"}}}, "metadata"),
        ({"input_file_base64": GOOD, "metadata": {"k": "v" * 513}}, "metadata"),
        ({"input_file_url": "ftp://example.com/in.jsonl"}, "input_file_url"),
        ({"input_file_url": "file:///etc/passwd"}, "input_file_url"),
        ({"input_file_url": "in.jsonl"}, "input_file_url"),
        ({"input_file_url": ""}, "input_file_url"),
        ({"input_file_url": "scaigrid://file/"}, "input_file_url"),
        ({"input_file_url": "scaigrid://bucket/file-x"}, "input_file_url"),
        ({"input_file_url": "s3://bucket-only"}, "input_file_url"),
    ],
)
async def test_submit_validation_errors(emu: Harness, body: dict[str, Any], field: str) -> None:
    error = assert_validation(await post(emu.client, body), field or "endpoint_completion_window")
    assert error["message"]
    # nothing was accepted or stored
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []
    assert (await emu.client.get("/v1/files")).json()["data"]["items"] == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"42", b"null", b"\xff\xfe"]
)
async def test_body_that_is_not_a_json_object_is_422(emu: Harness, raw: bytes) -> None:
    resp = await emu.client.post(BATCH, content=raw, headers={"content-type": "application/json"})
    # api/http.json_body describes the problem but names no field (the whole body is wrong)
    assert_validation(resp, None)


async def test_metadata_at_the_limits_is_accepted(emu: Harness) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert all(len(k) == 64 for k in metadata)
    b = await emu.submit([chat_line("a")], metadata=metadata)
    assert b["metadata"] == metadata


async def test_base64_over_10_mb_is_422(emu: Harness) -> None:
    over = base64.b64encode(b"x" * (MAX_BASE64_BYTES + 1)).decode()
    assert_validation(await post(emu.client, {"input_file_base64": over}), "input_file_base64")
    far_over = "A" * (2 * MAX_BASE64_BYTES)  # refused before decoding
    assert_validation(await post(emu.client, {"input_file_base64": far_over}), "input_file_base64")


async def test_base64_of_exactly_10_mb_is_accepted(emu: Harness) -> None:
    await hold(emu)
    exact = base64.b64encode(b"x" * MAX_BASE64_BYTES).decode()
    resp = await post(emu.client, {"input_file_base64": exact})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["data"]["status"] == "pending"


async def test_no_authorization_is_401(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        resp = await post(anon, {"input_file_base64": GOOD})
        assert_error(resp, 401, "AUTH_TOKEN_MISSING")


# --- input sources -------------------------------------------------------------------------------

BUCKET = "batch-api-inputs"
S3_KEY = "jobs/input.jsonl"
S3_LINES = [chat_line("s3-1"), embed_line("s3-2"), chat_line("s3-3")]


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: str) -> str:
    """The moto server, holding one bucket with a three-line batch input."""
    client = s3_client(moto_server)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=S3_KEY, Body=jsonl(S3_LINES))
    return moto_server


async def _run_from_url(emu: Harness, url: str) -> dict[str, Any]:
    resp = await post(emu.client, {"input_file_url": url})
    assert resp.status_code == 200, resp.text
    b: dict[str, Any] = resp.json()["data"]
    assert b["input_file_url"] == url
    await emu.settle()
    done = await emu.batch(b["id"])
    assert done["status"] == "completed", done
    return done


async def test_input_from_an_http_presigned_url(moto_endpoint: str, emu: Harness) -> None:
    url = s3_client(moto_endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": S3_KEY}, ExpiresIn=3600
    )
    assert url.startswith("http://127.0.0.1:")
    done = await _run_from_url(emu, url)
    assert done["total_count"] == 3
    assert [r["custom_id"] for r in await emu.results(done["id"])] == ["s3-1", "s3-2", "s3-3"]
    f = (await emu.client.get(f"/v1/files/{done['input_file_id']}")).json()["data"]
    assert f["sha256"] == hashlib.sha256(jsonl(S3_LINES)).hexdigest()
    assert f["filename"] == "input.jsonl"


async def test_input_from_an_http_url_that_answers_404_is_422(
    moto_endpoint: str, emu: Harness
) -> None:
    url = s3_client(moto_endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "missing.jsonl"}, ExpiresIn=3600
    )
    error = assert_validation(await post(emu.client, {"input_file_url": url}), "input_file_url")
    assert "404" in error["message"]
    assert (await emu.client.get("/v1/files")).json()["data"]["items"] == []


async def test_input_from_s3(moto_endpoint: str, aws_creds: None, make_emu: MakeEmu) -> None:
    emu = await make_emu(s3_endpoint_url=moto_endpoint)
    done = await _run_from_url(emu, f"s3://{BUCKET}/{S3_KEY}")
    assert [r["custom_id"] for r in await emu.results(done["id"])] == ["s3-1", "s3-2", "s3-3"]
    resp = await post(emu.client, {"input_file_url": f"s3://{BUCKET}/nope.jsonl"})
    assert "NoSuchKey" in assert_validation(resp, "input_file_url")["message"]


async def test_input_from_scaidrive(tmp_path: Path, make_emu: MakeEmu) -> None:
    root = tmp_path / "drive"
    (root / "jobs").mkdir(parents=True)
    (root / "jobs" / "in.jsonl").write_bytes(jsonl([chat_line("d-1"), chat_line("d-2")]))
    (tmp_path / "secret.jsonl").write_bytes(jsonl([chat_line("secret")]))
    emu = await make_emu(scaidrive_root=root)
    done = await _run_from_url(emu, "scaidrive://jobs/in.jsonl")
    assert [r["custom_id"] for r in await emu.results(done["id"])] == ["d-1", "d-2"]
    f = (await emu.client.get(f"/v1/files/{done['input_file_id']}")).json()["data"]
    assert f["filename"] == "in.jsonl"
    for url in (
        "scaidrive://../secret.jsonl",
        "scaidrive://jobs/../../secret.jsonl",
        "scaidrive://%2e%2e/secret.jsonl",
        "scaidrive://jobs/%2E%2E/%2E%2E/secret.jsonl",
    ):
        error = assert_validation(await post(emu.client, {"input_file_url": url}), "input_file_url")
        assert "escapes" in error["message"], url
    # an absolute path is taken inside the root, never as a path on the host
    for url in (f"scaidrive://{tmp_path / 'secret.jsonl'}", "scaidrive://jobs/missing.jsonl"):
        error = assert_validation(await post(emu.client, {"input_file_url": url}), "input_file_url")
        assert "no such file" in error["message"], url
    batches = (await emu.client.get(BATCH)).json()["data"]["items"]
    assert [x["id"] for x in batches] == [done["id"]]


async def test_scaidrive_without_a_root_is_422(emu: Harness) -> None:
    resp = await post(emu.client, {"input_file_url": "scaidrive://jobs/in.jsonl"})
    assert_validation(resp, "input_file_url")


async def test_scaigrid_file_that_does_not_exist_or_is_another_tenants_is_404(
    emu: Harness,
) -> None:
    resp = await post(emu.client, {"input_file_url": "scaigrid://file/file-nope"})
    assert_error(resp, 404, "FILE_NOT_FOUND")
    f = await upload_ok(emu.client, jsonl([chat_line("a")]))
    async with emu.client_for(key("other")) as other:
        assert_error(await post(other, {"input_file_url": f["url"]}), 404, "FILE_NOT_FOUND")
        assert (await other.get(BATCH)).json()["data"]["items"] == []


# --- limits --------------------------------------------------------------------------------------


def test_default_limits() -> None:
    s = Settings()
    assert s.max_requests_per_batch == 50_000
    assert s.max_input_bytes == 500 * 1024 * 1024
    assert s.max_active_batches == 10


async def test_more_requests_than_the_limit_is_quota_exceeded(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_requests_per_batch=3)
    lines = [chat_line(f"r{i}") for i in range(4)]
    resp = await post(emu.client, {"input_file_base64": b64(lines)})
    assert_quota(resp, "4 requests", "limit is 3")
    # the inline input made for the refused submit is not left behind
    assert (await emu.client.get("/v1/files")).json()["data"]["items"] == []
    # an uploaded file over the limit is refused too, and stays the user's
    f = await upload_ok(emu.client, jsonl(lines))
    assert_quota(await post(emu.client, {"input_file_url": f["url"]}), "limit is 3")
    assert (await emu.client.get(f"/v1/files/{f['id']}")).status_code == 200
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []
    # exactly the limit (blank lines do not count) is fine
    b = await emu.submit([chat_line("a"), b"", chat_line("b"), b"  ", chat_line("c")])
    assert b["total_count"] == 3


async def test_input_over_max_input_bytes_is_quota_exceeded(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_input_bytes=1000)
    big = [chat_line(f"r{i}", content="x" * 200) for i in range(4)]
    assert len(jsonl(big)) > 1000
    assert_quota(await post(emu.client, {"input_file_base64": b64(big)}), "1000")
    assert (await emu.client.get("/v1/files")).json()["data"]["items"] == []
    # a stored file over the limit (uploaded through another door) is refused as input as well
    f = await emu.core.files.create_file(
        open_tenant_id(KEY), "big.jsonl", "batch", _chunks(jsonl(big)), max_bytes=10_000
    )
    assert_quota(await post(emu.client, {"input_file_url": f"scaigrid://file/{f.id}"}), "1000")
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []


async def test_eleventh_active_batch_is_quota_exceeded(emu: Harness) -> None:
    await hold(emu)  # all ten stay pending until the test settles
    for i in range(10):
        await emu.submit([chat_line(f"r{i}")])
    assert await emu.core.store.count_active_batches(open_tenant_id(KEY)) == 10
    resp = await post(emu.client, {"input_file_base64": b64([chat_line("x")])})
    assert_quota(resp, "10 of 10")
    assert len((await emu.client.get(BATCH)).json()["data"]["items"]) == 10
    # another tenant has its own allowance
    async with emu.client_for(key("other")) as other:
        await emu.submit([chat_line("o")], client=other)
    # once they finish, the tenant may submit again
    await emu.settle()
    assert await emu.core.store.count_active_batches(open_tenant_id(KEY)) == 0
    await emu.submit([chat_line("x")])


async def test_active_limit_is_configurable_and_counts_processing_batches(
    make_emu: MakeEmu, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = await make_emu(max_active_batches=2)
    use_plan(monkeypatch, emu, SlowPlan(seconds=100))
    a = await emu.submit([chat_line("a")])
    b = await emu.submit([chat_line("b")])
    await emu.settle()
    assert {(await emu.batch(x["id"]))["status"] for x in (a, b)} == {"processing"}
    assert_quota(await post(emu.client, {"input_file_base64": GOOD}), "2 of 2")
    await emu.advance(100)
    assert (await emu.batch(a["id"]))["status"] == "completed"
    await emu.submit([chat_line("c")])


# --- fatal parse errors --------------------------------------------------------------------------

OK1, OK2 = chat_line("ok-1"), chat_line("ok-2")


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (b"{not json", "JSON"),
        (b'{"custom_id": "x", "method": "POST"', "JSON"),
        (b"[1, 2, 3]", "object"),
        (b'"a string"', "object"),
        (b"42", "object"),
        (b"null", "object"),
        ({"method": "POST", "url": CHAT, "body": {}}, "custom_id"),
        ({"custom_id": "", "method": "POST", "url": CHAT, "body": {}}, "custom_id"),
        ({"custom_id": 7, "method": "POST", "url": CHAT, "body": {}}, "custom_id"),
        ({"custom_id": None, "method": "POST", "url": CHAT, "body": {}}, "custom_id"),
        (chat_line("ok-1"), "duplicate"),
        (line("g", CHAT, {"model": CHAT_MODEL}, method="GET"), "POST"),
        (line("g", CHAT, {"model": CHAT_MODEL}, method="post"), "POST"),
        ({"custom_id": "g", "url": CHAT, "body": {}}, "POST"),
        (line("u", "/v1/inference/audio/transcribe", {"model": CHAT_MODEL}), "batchable"),
        (line("u", "/v1/chat/completions", {"model": CHAT_MODEL}), "batchable"),
        ({"custom_id": "u", "method": "POST", "body": {}}, "batchable"),
        (line("b", CHAT, ["not", "an", "object"]), "body"),
        (line("b", CHAT, "text"), "body"),
        (line("b", CHAT, None), "body"),
        ({"custom_id": "b", "method": "POST", "url": CHAT}, "body"),
    ],
)
async def test_a_fatal_line_fails_the_batch(emu: Harness, bad: Any, fragment: str) -> None:
    # blank lines count as lines: the bad one is line 5
    raw = jsonl([OK1, b"", OK2, b"   ", bad, chat_line("ok-3")])
    resp = await post(emu.client, {"input_file_base64": base64.b64encode(raw).decode()})
    assert resp.status_code == 200, resp.text
    b = resp.json()["data"]
    assert b["status"] == "pending"
    await emu.advance(7)
    failed = await emu.batch(b["id"])
    assert_batch_shape(failed)
    assert failed["status"] == "failed"
    assert failed["failed_at"] == at(0)
    assert failed["completed_at"] is None and failed["cancelled_at"] is None
    assert failed["results_url"] is None and failed["results_expires_at"] is None
    error = failed["error"]
    assert error["code"] == "INPUT_PARSE_ERROR"
    assert error["message"]
    assert [d["line"] for d in error["details"]] == [5]
    assert fragment.lower() in error["details"][0]["message"].lower()
    assert (failed["completed_count"], failed["failed_count"]) == (0, 0)
    assert failed["usage"]["total_tokens"] == 0 and failed["cost"]["live"] == "0.000000"


@pytest.mark.parametrize("raw", [b"", b"\n", b"\n\n   \n\t\n"])
async def test_an_input_without_requests_fails(emu: Harness, raw: bytes) -> None:
    resp = await post(emu.client, {"input_file_base64": base64.b64encode(raw).decode()})
    assert resp.status_code == 200, resp.text
    b = resp.json()["data"]
    assert b["total_count"] == 0
    await emu.settle()
    failed = await emu.batch(b["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "INPUT_PARSE_ERROR"
    assert failed["error"]["details"]
    assert "no requests" in failed["error"]["details"][0]["message"]
    assert failed["results_url"] is None


async def test_an_input_file_deleted_before_the_start_fails_the_batch(emu: Harness) -> None:
    await hold(emu)
    f = await upload_ok(emu.client, jsonl([chat_line("a")]))
    b = (await post(emu.client, {"input_file_url": f["url"]})).json()["data"]
    assert (await emu.client.delete(f"/v1/files/{f['id']}")).status_code == 200
    await emu.settle()
    failed = await emu.batch(b["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "INPUT_PARSE_ERROR"
    assert "deleted" in failed["error"]["details"][0]["message"]


async def test_every_bad_line_is_listed(emu: Harness) -> None:
    raw = jsonl(
        [
            b"nope",  # 1
            OK1,  # 2
            b"",  # 3
            chat_line("ok-1"),  # 4: duplicate
            line("x", CHAT, {}, method="PUT"),  # 5
            OK2,  # 6
            b"[]",  # 7
        ]
    )
    b = await emu.submit([raw.rstrip(b"\n")])
    await emu.settle()
    failed = await emu.batch(b["id"])
    assert [d["line"] for d in failed["error"]["details"]] == [1, 4, 5, 7]
    assert "line 1" in failed["error"]["message"]


async def test_150_bad_lines_give_exactly_100_details(emu: Harness) -> None:
    raw = b"".join(b"bad line %d\n" % i for i in range(150))
    b = await emu.submit([raw.rstrip(b"\n")])
    await emu.settle()
    failed = await emu.batch(b["id"])
    assert failed["status"] == "failed"
    assert [d["line"] for d in failed["error"]["details"]] == list(range(1, 101))


async def test_crlf_line_endings_parse(emu: Harness) -> None:
    raw = b"\r\n".join(orjson.dumps(x) for x in [OK1, OK2]) + b"\r\n"
    final, results = await run(emu, [raw.rstrip(b"\r\n")])
    assert final["status"] == "completed"
    assert [r["custom_id"] for r in results] == ["ok-1", "ok-2"]


# --- per-request errors and results --------------------------------------------------------------


async def test_per_request_errors_are_records_and_the_batch_completes(emu: Harness) -> None:
    lines = [
        chat_line("ok-chat"),
        chat_line("unknown-model", model="nobody/nothing"),
        chat_line("wrong-modality", model=EMBED_MODEL),
        line("no-messages", CHAT, {"model": CHAT_MODEL}),
        line("no-input", EMBED, {"model": EMBED_MODEL}),
        line("no-prompt", GENERATE, {"model": CHAT_MODEL}),
        line("no-image-prompt", IMAGES, {"model": "openai/dall-e-3"}),
        chat_line("too-long", max_tokens=32769),
        chat_line("max-ok", max_tokens=32768),
        line("no-model", CHAT, {"messages": [{"role": "user", "content": "hi"}]}),
        embed_line("ok-embed"),
    ]
    final, results = await run(emu, lines)
    assert final["status"] == "completed"
    assert final["total_count"] == len(lines)
    assert (final["completed_count"], final["failed_count"]) == (3, 8)
    assert_counts_add_up(final)
    assert [r["custom_id"] for r in results] == [x["custom_id"] for x in lines]
    codes = {r["custom_id"]: r["error"]["code"] for r in results if r["status"] == "error"}
    assert codes == {
        "unknown-model": "MODEL_NOT_FOUND",
        "wrong-modality": "VALIDATION_ERROR",
        "no-messages": "VALIDATION_ERROR",
        "no-input": "VALIDATION_ERROR",
        "no-prompt": "VALIDATION_ERROR",
        "no-image-prompt": "VALIDATION_ERROR",
        "too-long": "VALIDATION_ERROR",
        "no-model": "VALIDATION_ERROR",
    }
    for r in results:
        if r["status"] == "ok":
            assert set(r) == {"custom_id", "status", "response"}
        else:
            assert set(r) == {"custom_id", "status", "error"}
            assert set(r["error"]) == {"code", "message"}
            assert r["error"]["message"]


async def test_an_unexpected_engine_fault_is_one_error_record(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug in the engine for one request must not stall its batch (or the batches after it):
    # that request gets an INTERNAL_ERROR record, as a live call gets INTERNAL_ERROR 500.
    real = emu.core.engine.infer

    def infer(route: str, body: Any, **kw: Any) -> dict[str, Any]:
        if body.get("messages", [{}])[0].get("content") == "boom":
            raise RuntimeError("engine bug")
        return real(route, body, **kw)

    monkeypatch.setattr(emu.core.engine, "infer", infer)
    await hold(emu)
    a = await emu.submit([chat_line("x", content="boom"), chat_line("y")])
    other = await emu.submit([chat_line("z")])
    await emu.settle()
    done = await emu.batch(a["id"])
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("completed", 1, 1)
    results = await emu.results(a["id"])
    assert results[0]["error"]["code"] == "INTERNAL_ERROR"
    assert "engine bug" not in results[0]["error"]["message"]
    assert results[1]["status"] == "ok"
    assert (await emu.batch(other["id"]))["status"] == "completed"


async def test_mixed_routes_in_one_file_match_live_answers(emu: Harness) -> None:
    lines = [
        chat_line("chat"),
        gen_line("generate"),
        embed_line("embed", ["alpha beta", "beta gamma"]),
        image_line("image", response_format="b64_json"),
        image_line("image-url"),
        chat_line("chat-2", content="Another question"),
    ]
    final, results = await run(emu, lines)
    assert final["status"] == "completed"
    assert (final["completed_count"], final["failed_count"]) == (len(lines), 0)
    assert [r["custom_id"] for r in results] == [x["custom_id"] for x in lines]
    assert all(r["status"] == "ok" for r in results)
    by_id = {r["custom_id"]: r["response"] for r in results}
    assert by_id["chat"]["object"] == "chat.completion"
    assert by_id["generate"]["object"] == "text_completion"
    assert len(by_id["embed"]["data"]) == 2
    assert len(by_id["embed"]["data"][0]["embedding"]) == 1536
    assert base64.b64decode(by_id["image"]["data"][0]["b64_json"]).startswith(b"\x89PNG")
    # The same request sent live gets the same answer (the clock has not moved). Image links
    # are compared without their origin: a live call's links name the host the caller used,
    # a batch's the emulator's configured base URL.
    for x in lines:
        resp = await emu.client.post(x["url"], json=x["body"])
        assert resp.status_code == 200, resp.text
        # Image links included: batch results point where the client submitted from. Response
        # ids differ: each names its own response.
        live, batched = resp.json()["data"], by_id[x["custom_id"]]
        if "id" in batched:
            assert live.pop("id") != batched.pop("id")
        assert live == batched, x["custom_id"]


async def test_same_prompt_same_answer_live_and_in_a_batch(emu: Harness) -> None:
    body = chat_line("q", content="What is the capital of France?", max_tokens=40)["body"]
    await emu.advance(123)
    live = (await emu.client.post(CHAT, json=body)).json()["data"]
    await emu.advance(3600)  # a batch later in time: only `created` may differ
    _, results = await run(emu, [line("q", CHAT, body)])
    batched = results[0]["response"]
    assert batched["choices"] == live["choices"]
    assert batched["usage"] == live["usage"]
    assert batched["model"] == live["model"] and batched["id"] != live["id"]


async def test_each_line_has_its_own_response_id_named_after_batch_and_custom_id(
    emu: Harness,
) -> None:
    """Two lines with one body, in two batches: one content, four ids, each the engine's name
    for (batch, custom_id), so a rerun under the seed repeats them."""
    body = chat_line("x", content="Same question")["body"]
    lines = [line("a", CHAT, body), line("b", CHAT, body)]
    first_id, first = await run(emu, lines)
    second_id, second = await run(emu, lines)
    responses = [r["response"] for r in first + second]
    ids = [r.pop("id") for r in responses]
    assert len(set(ids)) == 4
    engine = emu.core.engine
    assert ids == [
        engine.response_id(CHAT, f"{b['id']}/{cid}") for b in (first_id, second_id) for cid in "ab"
    ]
    assert all(r == responses[0] for r in responses)


async def test_results_stream_is_jsonl_in_input_order(emu: Harness) -> None:
    lines = [chat_line(f"req-{i:03d}") for i in range(250)][::-1]  # not sorted by id
    b = await emu.submit(lines)
    await emu.settle()
    url = (await emu.batch(b["id"]))["results_url"]
    async with emu.client_for(None) as anon:
        resp = await anon.get(url)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/jsonl")
    raw = resp.content.split(b"\n")
    assert raw[-1] == b"" and len(raw) == 251
    ids = [orjson.loads(x)["custom_id"] for x in raw[:-1]]
    assert ids == [x["custom_id"] for x in lines]


async def test_custom_ids_with_quotes_and_unicode_survive(emu: Harness) -> None:
    ids = ['with "quotes"', "back\\slash", "ünïcødé ✓", "new\nline", "tab\t"]
    _, results = await run(emu, [chat_line(i) for i in ids])
    assert [r["custom_id"] for r in results] == ids


# --- list ----------------------------------------------------------------------------------------


async def test_list_newest_first_with_cursor_pagination(emu: Harness) -> None:
    made = []
    for i in range(5):
        made.append((await emu.submit([chat_line(f"r{i}")]))["id"])
        await emu.advance(1)
    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await emu.client.get(BATCH, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items = body["data"]["items"]
        for item in items:
            assert_batch_shape(item)
        pages.append(len(items))
        seen += [b["id"] for b in items]
        cursor = body["pagination"]["next_cursor"]
        assert body["pagination"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == made[::-1]
    default = (await emu.client.get(BATCH)).json()
    assert [b["id"] for b in default["data"]["items"]] == made[::-1]
    assert default["pagination"] == {"has_more": False, "next_cursor": None}


async def test_list_filters_by_status(emu: Harness) -> None:
    await hold(emu)
    completed = await emu.submit([chat_line("a")])
    failed = await emu.submit([b"nope"])
    await emu.settle()
    cancelled = await emu.submit([chat_line("b")])
    await emu.client.post(f"{BATCH}/{cancelled['id']}/cancel")
    pending = await emu.submit([chat_line("c")])
    expected = {
        "completed": [completed["id"]],
        "failed": [failed["id"]],
        "cancelled": [cancelled["id"]],
        "pending": [pending["id"]],
        "processing": [],
    }
    for status, ids in expected.items():
        resp = await emu.client.get(BATCH, params={"status": status})
        assert resp.status_code == 200, resp.text
        items = resp.json()["data"]["items"]
        assert [b["id"] for b in items] == ids, status
        assert all(b["status"] == status for b in items)


async def test_list_pagination_within_a_status_filter(emu: Harness) -> None:
    await hold(emu)
    done = []
    for i in range(3):
        done.append((await emu.submit([chat_line(f"d{i}")]))["id"])
        await emu.settle()
        await emu.submit([b"bad"])
        await emu.settle()
    page1 = (await emu.client.get(BATCH, params={"status": "completed", "limit": 2})).json()
    assert [b["id"] for b in page1["data"]["items"]] == done[:0:-1]
    cursor = page1["pagination"]["next_cursor"]
    params = {"status": "completed", "limit": 2, "cursor": cursor}
    page2 = (await emu.client.get(BATCH, params=params)).json()
    assert [b["id"] for b in page2["data"]["items"]] == done[:1]
    assert page2["pagination"] == {"has_more": False, "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "expired"}, "status"),
        ({"status": "in_progress"}, "status"),
        ({"status": ""}, "status"),
        ({"limit": "101"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, "cursor"),  # "seq:" + 24 nines
    ],
)
async def test_list_refuses_bad_parameters(
    emu: Harness, params: dict[str, str], field: str
) -> None:
    assert_validation(await emu.client.get(BATCH, params=params), field)


async def test_list_limit_100_is_allowed(emu: Harness) -> None:
    assert (await emu.client.get(BATCH, params={"limit": "100"})).status_code == 200


# --- get -----------------------------------------------------------------------------------------


async def test_unknown_batch_is_404(emu: Harness) -> None:
    error = assert_error(await emu.client.get(f"{BATCH}/batch_nope"), 404, "BATCH_NOT_FOUND")
    assert "batch_nope" in error["message"]
    resp = await emu.client.post(f"{BATCH}/batch_nope/cancel")
    assert_error(resp, 404, "BATCH_NOT_FOUND")


# --- cancel --------------------------------------------------------------------------------------


async def test_cancel_a_pending_batch(emu: Harness) -> None:
    await hold(emu)
    lines = [chat_line("a"), embed_line("b"), chat_line("c")]
    b = await emu.submit(lines)
    emu.core.clock.advance(30)  # time passes, but with the worker held nothing runs
    assert (await emu.batch(b["id"]))["status"] == "pending"
    resp = await emu.client.post(f"{BATCH}/{b['id']}/cancel")
    assert resp.status_code == 200, resp.text
    c = resp.json()["data"]
    assert_batch_shape(c)
    assert c["status"] == "cancelled"
    assert c["cancelled_at"] == at(30)
    assert c["completed_at"] is None and c["failed_at"] is None
    assert (c["total_count"], c["completed_count"], c["failed_count"]) == (3, 0, 3)
    assert c["results_url"] and c["results_expires_at"] == at(30 + 3600)
    results = await emu.results(b["id"])
    assert [r["custom_id"] for r in results] == ["a", "b", "c"]
    assert {r["error"]["code"] for r in results} == {"BATCH_CANCELLED"}
    assert all(r["status"] == "error" for r in results)
    # the worker leaves it alone afterwards
    await emu.advance(3600)
    assert (await emu.batch(b["id"]))["status"] == "cancelled"
    assert len(await emu.results(b["id"])) == 3


async def test_cancel_a_processing_batch_between_requests(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic "in the middle": each request takes 10 s of emulator time on one lane, so
    # after 25 s exactly two have finished and the batch is processing; the frozen clock keeps
    # it there until the test cancels.
    use_plan(monkeypatch, emu, SlowPlan(seconds=10))
    lines = [chat_line(f"r{i}") for i in range(10)]
    b = await emu.submit(lines)
    await emu.advance(25)
    mid = await emu.batch(b["id"])
    assert mid["status"] == "processing"
    assert (mid["completed_count"], mid["failed_count"]) == (2, 0)
    assert mid["started_at"] == at(0) and mid["results_url"] is None
    resp = await emu.client.post(f"{BATCH}/{b['id']}/cancel")
    assert resp.status_code == 200, resp.text
    c = resp.json()["data"]
    assert c["status"] == "cancelled" and c["cancelled_at"] == at(25)
    assert (c["completed_count"], c["failed_count"], c["total_count"]) == (2, 8, 10)
    results = await emu.results(b["id"])
    assert [r["custom_id"] for r in results] == [x["custom_id"] for x in lines]
    assert [r["status"] for r in results] == ["ok"] * 2 + ["error"] * 8
    assert {r["error"]["code"] for r in results[2:]} == {"BATCH_CANCELLED"}
    # finished requests were priced; cancelled ones were not
    assert c["usage"]["input_tokens"] == sum(
        r["response"]["usage"]["prompt_tokens"] for r in results[:2]
    )
    await emu.advance(1000)
    after = await emu.batch(b["id"])
    assert (after["status"], after["completed_count"], after["failed_count"]) == (
        "cancelled",
        2,
        8,
    )


async def test_cancel_between_worker_chunks(emu: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker stores results CHUNK at a time. With CHUNK = 3 and a store that refuses the
    # second chunk, one pass commits exactly three results and leaves the batch processing; the
    # cancel then lands "between chunks" deterministically.
    batch_id = await _processing_with_three_done(emu, monkeypatch)
    mid = await emu.batch(batch_id)
    assert (mid["status"], mid["completed_count"], mid["failed_count"]) == ("processing", 3, 0)
    resp = await emu.client.post(f"{BATCH}/{batch_id}/cancel")
    assert resp.status_code == 200, resp.text
    c = resp.json()["data"]
    assert (c["status"], c["completed_count"], c["failed_count"]) == ("cancelled", 3, 5)
    results = await emu.results(batch_id)
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(8)]
    assert [r["status"] for r in results] == ["ok"] * 3 + ["error"] * 5
    assert {r["error"]["code"] for r in results[3:]} == {"BATCH_CANCELLED"}


async def _processing_with_three_done(emu: Harness, monkeypatch: pytest.MonkeyPatch) -> str:
    """An 8-request batch left `processing` with 3 results, by a write that fails mid-pass."""
    await hold(emu)
    monkeypatch.setattr(emulator.batch.worker, "CHUNK", 3)
    b = await emu.submit([chat_line(f"r{i}") for i in range(8)])
    store = emu.core.store
    real = store.record_results
    calls = 0

    async def record_once(*args: Any, **kw: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("simulated write failure")
        await real(*args, **kw)

    monkeypatch.setattr(store, "record_results", record_once)
    with pytest.raises(RuntimeError):
        await emu.settle()
    monkeypatch.setattr(store, "record_results", real)
    batch_id: str = b["id"]
    return batch_id


async def test_a_failed_cancel_changes_nothing(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = await _processing_with_three_done(emu, monkeypatch)
    store = emu.core.store

    async def fail(*args: Any, **kw: Any) -> None:
        raise RuntimeError("simulated write failure")

    with monkeypatch.context() as m:
        m.setattr(store, "record_results", fail)
        resp = await emu.client.post(f"{BATCH}/{batch_id}/cancel")
    assert_error(resp, 500, "INTERNAL_ERROR")
    mid = await emu.batch(batch_id)
    assert (mid["status"], mid["completed_count"], mid["failed_count"]) == ("processing", 3, 0)
    # the worker carries on from what was stored, not from the failed cancel's view
    await emu.settle()
    done = await emu.batch(batch_id)
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("completed", 8, 0)
    assert [r["status"] for r in await emu.results(batch_id)] == ["ok"] * 8


async def test_a_cancel_is_one_write(
    make_emu: MakeEmu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request without a result gets its BATCH_CANCELLED record in the same transaction as
    # the status change; were it chunked, a crash between chunks would leave a half-cancelled
    # batch that resumes and "completes" with some requests cancelled.
    db = str(tmp_path / "x.db")
    emu = await make_emu(db=db)
    batch_id = await _processing_with_three_done(emu, monkeypatch)
    store = emu.core.store
    real = store.record_results
    writes = 0

    async def first_write_only(*args: Any, **kw: Any) -> None:
        nonlocal writes
        writes += 1
        if writes > 1:
            raise RuntimeError("simulated crash after the first write")
        await real(*args, **kw)

    monkeypatch.setattr(store, "record_results", first_write_only)
    resp = await emu.client.post(f"{BATCH}/{batch_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert writes == 1
    emu = await _restart(make_emu, emu, db)
    await emu.settle()
    c = await emu.batch(batch_id)
    assert (c["status"], c["completed_count"], c["failed_count"]) == ("cancelled", 3, 5)
    assert [r["status"] for r in await emu.results(batch_id)] == ["ok"] * 3 + ["error"] * 5


async def test_a_worker_pass_that_read_the_batch_before_a_cancel_leaves_it_cancelled(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: a pass lists the active batches, a cancel commits, then the pass reaches the
    # batch. Replaying the pass with the list read before the cancel makes it deterministic.
    await hold(emu)
    b = await emu.submit([chat_line(f"r{i}") for i in range(5)])
    store = emu.core.store
    before_cancel = await store.active_batches()
    assert (await emu.client.post(f"{BATCH}/{b['id']}/cancel")).status_code == 200

    async def stale_list() -> list[BatchRecord]:
        return before_cancel

    monkeypatch.setattr(store, "active_batches", stale_list)
    await emu.settle()
    c = await emu.batch(b["id"])
    assert (c["status"], c["completed_count"], c["failed_count"]) == ("cancelled", 0, 5)
    results = await emu.results(b["id"])
    assert {r["error"]["code"] for r in results} == {"BATCH_CANCELLED"}


async def test_a_cancel_that_read_the_batch_before_it_completed_is_409(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other order: the cancel reads the batch (pending), the worker completes it, then the
    # cancel reaches the worker. Replaying the cancel with the pending row makes it deterministic.
    await hold(emu)
    b = await emu.submit([chat_line(f"r{i}") for i in range(5)])
    store = emu.core.store
    pending = await store.get_batch(open_tenant_id(KEY), b["id"])
    await emu.settle()
    done = await emu.batch(b["id"])
    assert done["status"] == "completed"

    async def stale_get(tenant_id: str, batch_id: str) -> BatchRecord | None:
        return pending

    monkeypatch.setattr(store, "get_batch", stale_get)
    resp = await emu.client.post(f"{BATCH}/{b['id']}/cancel")
    assert_error(resp, 409, "BATCH_NOT_CANCELLABLE")
    monkeypatch.undo()
    after = await emu.batch(b["id"])
    assert (after["status"], after["completed_count"], after["failed_count"]) == ("completed", 5, 0)
    assert [r["status"] for r in await emu.results(b["id"])] == ["ok"] * 5


async def test_the_worker_keeps_nothing_in_memory_for_finished_batches(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await hold(emu)
    await emu.submit([chat_line("a")])
    await emu.submit([b"bad"])
    cancelled = await emu.submit([chat_line("b")])
    await emu.client.post(f"{BATCH}/{cancelled['id']}/cancel")
    await emu.settle()
    assert emu.core.worker._progress == {}
    use_plan(monkeypatch, emu, SlowPlan(seconds=10))
    await emu.submit([chat_line("c"), chat_line("d")], endpoint_completion_window="1h")
    await emu.settle()
    assert len(emu.core.worker._progress) == 1  # only the batch still processing
    await emu.advance(3600)
    assert emu.core.worker._progress == {}


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
async def test_cancel_in_a_final_state_is_409(emu: Harness, final: str) -> None:
    await hold(emu)
    b = await emu.submit([b"bad"] if final == "failed" else [chat_line("a")])
    if final == "cancelled":
        assert (await emu.client.post(f"{BATCH}/{b['id']}/cancel")).status_code == 200
    await emu.settle()
    before = await emu.batch(b["id"])
    assert before["status"] == final
    resp = await emu.client.post(f"{BATCH}/{b['id']}/cancel")
    error = assert_error(resp, 409, "BATCH_NOT_CANCELLABLE")
    assert final in error["message"]
    after = await emu.batch(b["id"])
    before.pop("results_url"), after.pop("results_url")
    assert after == before


# --- results URLs --------------------------------------------------------------------------------


def _with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _fetch(emu: Harness, url: str) -> httpx.Response:
    async with emu.client_for(None) as anon:
        return await anon.get(url)


async def test_results_url_needs_no_authorization_and_expires_after_an_hour(
    emu: Harness,
) -> None:
    b = await emu.submit([chat_line("a")])
    await emu.settle()
    url = (await emu.batch(b["id"]))["results_url"]
    assert url.startswith("http://emulator.test/")
    resp = await _fetch(emu, url)
    assert resp.status_code == 200
    assert orjson.loads(resp.content.splitlines()[0])["custom_id"] == "a"
    await emu.advance(3599)
    assert (await _fetch(emu, url)).status_code == 200
    await emu.advance(1)
    assert_error(await _fetch(emu, url), 403, "RESULTS_URL_EXPIRED")
    # a fresh status call issues a fresh, valid link
    fresh = (await emu.batch(b["id"]))["results_url"]
    assert fresh != url
    assert (await _fetch(emu, fresh)).status_code == 200


async def test_every_status_call_issues_a_fresh_url(emu: Harness) -> None:
    b = await emu.submit([chat_line("a")])
    await emu.settle()
    first = await emu.batch(b["id"])
    await emu.advance(10)
    second = await emu.batch(b["id"])
    assert second["results_url"] != first["results_url"]
    assert ts(second["results_expires_at"]) - ts(first["results_expires_at"]) == timedelta(
        seconds=10
    )
    assert (await _fetch(emu, second["results_url"])).status_code == 200
    assert (await _fetch(emu, first["results_url"])).status_code == 200  # until its own expiry
    listed = (await emu.client.get(BATCH)).json()["data"]["items"][0]
    assert listed["results_url"] == second["results_url"]  # same instant, same link


async def test_tampered_results_urls_are_invalid(emu: Harness) -> None:
    a = await emu.submit([chat_line("a")])
    other = await emu.submit([chat_line("b")])
    await emu.settle()
    url = (await emu.batch(a["id"]))["results_url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    sig, expires = query["signature"], query["expires"]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    bad_urls = [
        _with_query(url, signature=flipped),
        _with_query(url, signature=sig.upper()),
        _with_query(url, signature=sig[:-1]),
        _with_query(url, signature=""),
        _with_query(url, expires=str(int(expires) + 3600)),
        _with_query(url, expires=str(int(expires) - 1)),
        _with_query(url, expires="soon"),
        _with_query(url, expires=""),
        _with_query(url, signature=None),
        _with_query(url, expires=None),
        _with_query(url, signature=None, expires=None),
        url.replace(a["id"], other["id"]),  # another batch with this link's signature
    ]
    for bad in bad_urls:
        assert_error(await _fetch(emu, bad), 403, "RESULTS_URL_INVALID")
    assert (await _fetch(emu, url)).status_code == 200


async def test_no_results_url_before_the_batch_is_finished(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_plan(monkeypatch, emu, SlowPlan(seconds=10))
    b = await emu.submit([chat_line("a"), chat_line("b")])
    assert b["results_url"] is None
    await emu.advance(10)
    mid = await emu.batch(b["id"])
    assert mid["status"] == "processing" and mid["results_url"] is None
    await emu.advance(10)
    done = await emu.batch(b["id"])
    assert done["status"] == "completed" and done["results_url"]
    assert done["completed_at"] == at(20)


# --- window expiry -------------------------------------------------------------------------------


async def test_window_expiry_fails_the_rest(emu: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # 10 requests of 1000 s each on one lane: they would finish at 1000, 2000, ... 10000 s, but
    # the 1h window ends at 3600 s, after three of them.
    use_plan(monkeypatch, emu, SlowPlan(seconds=1000, concurrency=1))
    lines = [chat_line(f"r{i}") for i in range(10)]
    b = await emu.submit(lines, endpoint_completion_window="1h")
    assert b["expires_at"] == at(3600)
    await emu.advance(3599)
    mid = await emu.batch(b["id"])
    assert (mid["status"], mid["completed_count"], mid["failed_count"]) == ("processing", 3, 0)
    await emu.advance(1)
    done = await emu.batch(b["id"])
    assert done["status"] == "completed"
    assert done["completed_at"] == done["expires_at"] == at(3600)
    assert (done["completed_count"], done["failed_count"], done["total_count"]) == (3, 7, 10)
    results = await emu.results(b["id"])
    assert [r["custom_id"] for r in results] == [x["custom_id"] for x in lines]
    assert [r["status"] for r in results] == ["ok"] * 3 + ["error"] * 7
    assert {r["error"]["code"] for r in results[3:]} == {"COMPLETION_WINDOW_EXPIRED"}


async def test_window_expiry_when_the_clock_jumps_far_past_it(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_plan(monkeypatch, emu, SlowPlan(seconds=1000, concurrency=2))
    b = await emu.submit([chat_line(f"r{i}") for i in range(10)], endpoint_completion_window="1h")
    await emu.advance(48 * 3600)  # one jump, long after the window
    done = await emu.batch(b["id"])
    # two lanes: 1000, 1000, 2000, 2000, 3000, 3000 are in time; 4000 and later are not
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("completed", 6, 4)
    assert done["completed_at"] == at(3600)


async def test_a_batch_that_never_started_expires_whole(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_plan(monkeypatch, emu, Plan(start_delay=5 * 3600))
    b = await emu.submit([chat_line("a"), chat_line("b")], endpoint_completion_window="4h")
    await emu.advance(3 * 3600)
    assert (await emu.batch(b["id"]))["status"] == "pending"
    await emu.advance(3600)
    done = await emu.batch(b["id"])
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("completed", 0, 2)
    assert done["completed_at"] == at(4 * 3600)
    # The contract's flow is pending -> processing -> completed: the batch passes through
    # processing at the instant its window closes, so nothing could run (README, assumptions).
    assert done["started_at"] == done["expires_at"] == done["completed_at"]
    results = await emu.results(b["id"])
    assert {r["error"]["code"] for r in results} == {"COMPLETION_WINDOW_EXPIRED"}


# --- pricing -------------------------------------------------------------------------------------


async def _prices(emu: Harness, slug: str) -> tuple[Decimal, Decimal, Decimal]:
    m = (await emu.client.get(f"/v1/models/{slug}")).json()["data"]
    return (
        Decimal(m["input_price_per_mtok"]),
        Decimal(m["output_price_per_mtok"]),
        Decimal(m["price_per_image"]) if "price_per_image" in m else Decimal(0),
    )


@pytest.mark.parametrize("window", ["24h", "4h", "1h"])
async def test_pricing_sums_ok_results_at_live_rates_less_the_discount(
    emu: Harness, window: str
) -> None:
    lines = [
        chat_line("c1", content="Summarize the history of the printing press."),
        chat_line("c2", content="Hi", model="openai/gpt-4o"),
        gen_line("g1"),
        embed_line("e1", ["one text", "two texts here"]),
        chat_line("bad", model="nobody/nothing"),  # errors are not priced
        chat_line("c3", content="x" * 999, model="tenant/acme/summarizer", max_tokens=7),
    ]
    resp = await emu.client.post(
        BATCH, json={"input_file_base64": b64(lines), "endpoint_completion_window": window}
    )
    b = resp.json()["data"]
    await emu.settle()
    raw = (await emu.client.get(f"{BATCH}/{b['id']}")).content
    done = orjson.loads(raw)["data"]
    results = await emu.results(b["id"])
    assert done["failed_count"] == 1
    live = Decimal(0)
    tokens_in = tokens_out = 0
    bodies = {x["custom_id"]: x["body"] for x in lines}
    for r in results:
        if r["status"] != "ok":
            continue
        usage = r["response"]["usage"]
        price_in, price_out, _ = await _prices(emu, bodies[r["custom_id"]]["model"])
        out = usage.get("completion_tokens", 0)
        assert out == 0 or r["custom_id"][0] != "e"  # embeddings bill input only
        tokens_in += usage["prompt_tokens"]
        tokens_out += out
        live += (usage["prompt_tokens"] * price_in + out * price_out) / Decimal(1_000_000)
    assert done["usage"] == {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }
    six = Decimal("0.000001")
    discount = Decimal(DISCOUNTS[window])
    assert done["cost"] == {
        "currency": "USD",
        "live": str(live.quantize(six)),
        "discount": DISCOUNTS[window],
        "amount": str((live * (1 - discount)).quantize(six)),
    }
    assert live > 0
    for name in ("live", "amount"):
        whole, _, frac = done["cost"][name].partition(".")
        assert whole.isdigit() and len(frac) == 6 and frac.isdigit()
    # money is never a JSON number
    assert b'"live":"' in raw and b'"amount":"' in raw and b'"discount":"' in raw


async def test_images_are_priced_per_image(emu: Harness) -> None:
    final, _ = await run(emu, [image_line("i1", n=2, response_format="b64_json")])
    _, _, per_image = await _prices(emu, "openai/dall-e-3")
    assert final["cost"]["live"] == str((2 * per_image).quantize(Decimal("0.000001")))


async def test_a_batch_of_only_errors_costs_nothing(emu: Harness) -> None:
    final, _ = await run(
        emu, [chat_line("x", model="nobody/nothing")], endpoint_completion_window="4h"
    )
    assert final["cost"] == {
        "currency": "USD",
        "live": "0.000000",
        "discount": "0.30",
        "amount": "0.000000",
    }
    assert final["usage"] == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


# --- tenant isolation ----------------------------------------------------------------------------


async def test_another_tenant_cannot_see_cancel_or_list_a_batch(emu: Harness) -> None:
    await hold(emu)
    b = await emu.submit([chat_line("a")])
    async with emu.client_for(key("intruder")) as other:
        assert_error(await other.get(f"{BATCH}/{b['id']}"), 404, "BATCH_NOT_FOUND")
        assert_error(await other.post(f"{BATCH}/{b['id']}/cancel"), 404, "BATCH_NOT_FOUND")
        assert (await other.get(BATCH)).json()["data"]["items"] == []
        await emu.settle()
        # finished: still invisible, so no results URL is ever issued to the other tenant
        resp = await other.get(f"{BATCH}/{b['id']}")
        assert_error(resp, 404, "BATCH_NOT_FOUND")
        assert "results_url" not in resp.text
        assert (await other.get(BATCH, params={"status": "completed"})).json()["data"][
            "items"
        ] == []
    # the owner's batch was not cancelled by the attempt
    assert (await emu.batch(b["id"]))["status"] == "completed"


# --- durability ----------------------------------------------------------------------------------


async def _restart(make_emu: MakeEmu, old: Harness, db: str) -> Harness:
    """Stop `old` (as a crash would: nothing more is written) and start a new core on `db`."""
    await old.close()
    await old.core.stop()
    return await make_emu(db=db)


async def test_a_pending_batch_survives_a_restart(make_emu: MakeEmu, tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    emu = await make_emu(db=db)
    await hold(emu)
    lines = [chat_line(f"r{i}") for i in range(7)]
    b = await emu.submit(lines)
    assert (await emu.batch(b["id"]))["status"] == "pending"
    emu = await _restart(make_emu, emu, db)
    assert (await emu.batch(b["id"]))["status"] in ("pending", "processing", "completed")
    await emu.settle()
    done = await emu.batch(b["id"])
    assert done["status"] == "completed"
    assert (done["completed_count"], done["failed_count"], done["total_count"]) == (7, 0, 7)
    results = await emu.results(b["id"])
    assert [r["custom_id"] for r in results] == [x["custom_id"] for x in lines]
    # new ids do not collide with the ones minted before the restart
    again = await emu.submit([chat_line("z")])
    assert again["id"] != b["id"] and again["input_file_id"] != b["input_file_id"]


async def test_a_partly_processed_batch_resumes_with_each_request_once(
    make_emu: MakeEmu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CHUNK = 4 and a store that fails on the third chunk: the "crash" leaves exactly two
    # committed chunks (8 results) of a processing batch, then the process goes away.
    monkeypatch.setattr(emulator.batch.worker, "CHUNK", 4)
    db = str(tmp_path / "x.db")
    emu = await make_emu(db=db)
    await hold(emu)
    lines = [chat_line(f"r{i:02d}") if i % 5 else embed_line(f"r{i:02d}") for i in range(19)]
    lines.insert(9, chat_line("bad-model", model="nobody/nothing"))
    b = await emu.submit(lines)
    store = emu.core.store
    real = store.record_results
    calls = 0

    async def crash_on_third(*args: Any, **kw: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("simulated crash before the third chunk commits")
        await real(*args, **kw)

    monkeypatch.setattr(store, "record_results", crash_on_third)
    with pytest.raises(RuntimeError):
        await emu.settle()
    mid = await emu.batch(b["id"])
    assert (mid["status"], mid["completed_count"] + mid["failed_count"]) == ("processing", 8)
    emu = await _restart(make_emu, emu, db)
    await emu.settle()
    done = await emu.batch(b["id"])
    assert done["status"] == "completed"
    assert done["total_count"] == 20
    assert (done["completed_count"], done["failed_count"]) == (19, 1)
    results = await emu.results(b["id"])
    ids = [r["custom_id"] for r in results]
    assert ids == [x["custom_id"] for x in lines]
    assert len(set(ids)) == len(ids) == 20
    # counters and usage agree with the stored results
    ok = [r for r in results if r["status"] == "ok"]
    assert done["usage"]["input_tokens"] == sum(r["response"]["usage"]["prompt_tokens"] for r in ok)


async def test_the_same_run_before_and_after_a_restart_gives_identical_results(
    make_emu: MakeEmu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [chat_line(f"r{i}", content=f"question {i}") for i in range(9)]
    reference = await make_emu()
    expected, expected_results = await run(reference, lines)

    monkeypatch.setattr(emulator.batch.worker, "CHUNK", 2)
    db = str(tmp_path / "y.db")
    emu = await make_emu(db=db)
    await hold(emu)
    b = await emu.submit(lines)
    real = emu.core.store.record_results
    calls = 0

    async def crash_on_second(*args: Any, **kw: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("simulated crash")
        await real(*args, **kw)

    monkeypatch.setattr(emu.core.store, "record_results", crash_on_second)
    with pytest.raises(RuntimeError):
        await emu.settle()
    emu = await _restart(make_emu, emu, db)
    await emu.settle()
    done = await emu.batch(b["id"])
    assert await emu.results(b["id"]) == expected_results
    for name in ("status", "total_count", "completed_count", "failed_count", "usage", "cost"):
        assert done[name] == expected[name], name


async def test_results_expire_an_hour_to_the_millisecond_after_the_status_call(
    emu: Harness,
) -> None:
    """A results URL minted at 10:00:00.400 is valid until 11:00:00.400, not 11:00:00."""
    b = await emu.submit([chat_line("a")])
    await emu.advance(0.4)
    done = await emu.batch(b["id"])
    assert done["results_expires_at"] == at(3600.4)
    async with emu.client_for(None) as anon:
        await emu.advance(3599.999)
        assert (await anon.get(done["results_url"])).status_code == 200
        await emu.advance(0.001)
        assert_error(await anon.get(done["results_url"]), 403, "RESULTS_URL_EXPIRED")


async def test_models_of_different_discounts_show_the_overall_discount_applied(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    """`cost.discount` is what the batch was actually discounted overall, 1 - amount / live: a
    batch of models with different rates shows their blend (weighted by live cost), which is
    no one model's rate; each model's own is its `batch_discount` (README, assumptions)."""
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  - {slug: acme/cheap, modality: chat, context_window: 8000, max_output_tokens: 1000,"
        " input_price_per_mtok: '1.00',"
        " output_price_per_mtok: '1.00',"
        " batch_discount: {'24h': '0.50', '4h': '0.30', '1h': '0.15'}}\n"
        "  - {slug: acme/dear, modality: chat, context_window: 8000, max_output_tokens: 1000,"
        " input_price_per_mtok: '1.00',"
        " output_price_per_mtok: '1.00',"
        " batch_discount: {'24h': '0.10', '4h': '0.05', '1h': '0.00'}}\n",
        encoding="utf-8",
    )
    emu = await make_emu(models=models)
    final, _ = await run(
        emu, [chat_line("a", model="acme/cheap"), chat_line("b", model="acme/dear")]
    )
    live, amount = Decimal(final["cost"]["live"]), Decimal(final["cost"]["amount"])
    discount = Decimal(final["cost"]["discount"])
    assert Decimal("0.10") < discount < Decimal("0.50")
    assert abs(discount - (live - amount) / live) <= Decimal("0.005")  # shown to 2 places


async def test_a_cancel_holds_one_error_payload_for_all_its_records(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records of a cancel share one exact-size payload: an orjson result of its own each
    keeps a 4 KiB buffer, ~200 MiB for 50,000 unfinished requests held until they are stored."""
    lines = [chat_line(f"r{i}") for i in range(1_200)]
    resp = await emu.client.post(
        BATCH,
        json={"input_file_base64": b64(lines)},
        headers={"X-Emulator-Scenario": "slow-processing"},  # processing, none done yet
    )
    batch = resp.json()["data"]
    await emu.settle()
    store = emu.core.store
    real = store.record_results
    seen: list[Any] = []

    async def keep(*args: Any, **kw: Any) -> None:
        seen.append(args)
        await real(*args, **kw)

    monkeypatch.setattr(store, "record_results", keep)
    assert (await emu.client.post(f"{BATCH}/{batch['id']}/cancel")).status_code == 200
    records = [r for args in seen for arg in args if isinstance(arg, list) for r in arg]
    assert len(records) == 1_200
    payloads = {id(r.payload) for r in records}
    assert len(payloads) == 1
    payload = records[0].payload
    assert sys.getsizeof(payload) == sys.getsizeof(b"") + len(payload)  # no spare buffer
    assert orjson.loads(payload)["code"] == "BATCH_CANCELLED"
