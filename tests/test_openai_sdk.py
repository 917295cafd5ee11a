"""The official `openai` SDK, sync and async with strict response validation, against a real
uvicorn server on loopback (the `scaigrid` fixture): batches end to end, pagination, errors,
retries, streaming. Time moves only when a test advances the emulator clock."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from emulator.pytest_plugin import Scaigrid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MODEL = "scailabs/poolnoodle-omni"
CHAT = "/v1/chat/completions"
FINAL = {"completed", "failed", "expired", "cancelled"}


def chat_line(custom_id: str, model: str = MODEL, content: str = "Hello") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": content}]},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def strict(scaigrid: Scaigrid, **options: Any) -> openai.OpenAI:
    client: openai.OpenAI = scaigrid.openai_client(_strict_response_validation=True, **options)
    return client


def strict_async(scaigrid: Scaigrid, **options: Any) -> openai.AsyncOpenAI:
    client: openai.AsyncOpenAI = scaigrid.openai_client(
        async_=True, _strict_response_validation=True, **options
    )
    return client


def lines_of(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


# --- the whole batch flow ---------------------------------------------------------------------


def test_the_whole_batch_flow_sync(scaigrid: Scaigrid) -> None:
    scaigrid.use_scenario(
        "name: steps\nprocessing: {start_delay: 10s, latency: 10s, finalize: 30s}\n"
    )
    client = strict(scaigrid)
    lines = [chat_line("ok-1"), chat_line("bad-model", model="nobody/none"), chat_line("ok-2")]
    upload = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    assert (upload.purpose, upload.status, upload.bytes) == (
        "batch",
        "processed",
        len(jsonl(lines)),
    )
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"project": "demo"},
    )
    assert batch.status == "validating" and batch.metadata == {"project": "demo"}
    assert batch.expires_at == batch.created_at + 86400
    seen = [batch.status]
    while batch.status not in FINAL:  # drive the clock, never sleep
        scaigrid.advance(10)
        batch = client.batches.retrieve(batch.id)
        if batch.status != seen[-1]:
            seen.append(batch.status)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    assert batch.in_progress_at == batch.created_at + 10
    assert batch.finalizing_at == batch.in_progress_at + 30  # the last request ends at +30 s
    assert batch.completed_at == batch.finalizing_at + 30
    assert batch.output_file_id and batch.error_file_id

    output = client.files.content(batch.output_file_id).text
    assert [line["custom_id"] for line in lines_of(output)] == ["ok-1", "ok-2"]
    for line in lines_of(output):
        assert re.fullmatch(r"batch_req_[0-9a-f]{32}", line["id"]) and line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
        assert line["response"]["body"]["object"] == "chat.completion"
    (failed,) = lines_of(client.files.content(batch.error_file_id).text)
    assert failed["custom_id"] == "bad-model" and failed["error"] is None
    assert failed["response"]["status_code"] == 404
    assert failed["response"]["body"]["error"]["code"] == "model_not_found"

    meta = client.files.retrieve(batch.output_file_id)
    assert (meta.purpose, meta.bytes) == ("batch_output", len(output.encode()))
    listed = {f.id for f in client.files.list(purpose="batch_output")}
    assert listed == {batch.output_file_id, batch.error_file_id}


async def test_the_whole_batch_flow_async_until_the_window_expires(scaigrid: Scaigrid) -> None:
    scaigrid.use_scenario("name: slow\nprocessing: {latency: 50m}\n")
    client = strict_async(scaigrid)
    lines = [chat_line(f"r{i}") for i in range(3)]  # done at 50 and 100 minutes; 150 is too late
    upload = await client.files.create(file=jsonl(lines), purpose="batch")
    assert upload.filename == "upload"  # what the SDK names nameless bytes
    batch = await client.batches.create(
        input_file_id=upload.id, endpoint=CHAT, completion_window="1h"
    )
    assert batch.expires_at == batch.created_at + 3600
    scaigrid.advance(hours=1)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "expired"
    assert batch.expired_at == batch.expires_at and batch.completed_at is None
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 1, "failed": 0}
    assert batch.output_file_id and batch.error_file_id
    output = await client.files.content(batch.output_file_id)
    assert [line["custom_id"] for line in lines_of(output.text)] == ["r0"]
    errors = lines_of((await client.files.content(batch.error_file_id)).text)
    assert [line["custom_id"] for line in errors] == ["r1", "r2"]
    for line in errors:
        assert line["response"] is None and line["error"]["code"] == "batch_expired"
    await client.close()


def test_a_cancel_that_takes_time_is_cancelling_then_cancelled(scaigrid: Scaigrid) -> None:
    scaigrid.use_scenario("name: drain\nprocessing: {latency: 10s, cancel_delay: 60s}\n")
    client = strict(scaigrid, max_retries=0)
    upload = client.files.create(
        file=jsonl([chat_line(f"r{i}") for i in range(10)]), purpose="batch"
    )
    batch = client.batches.create(input_file_id=upload.id, endpoint=CHAT, completion_window="24h")
    scaigrid.advance(15)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert cancelling.output_file_id is None and cancelling.error_file_id is None
    native = scaigrid.client.get(f"/v1/inference/batch/{batch.id}").json()["data"]
    assert native["status"] == "processing"  # the native view never shows cancelling
    assert client.batches.cancel(batch.id).status == "cancelling"  # asking again changes nothing
    scaigrid.advance(60)
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at == cancelling.cancelling_at + 60
    assert done.request_counts is not None  # requests due until the cancel took effect ran
    assert done.request_counts.model_dump() == {"total": 10, "completed": 7, "failed": 0}
    assert done.error_file_id is not None
    unrun = lines_of(client.files.content(done.error_file_id).text)
    assert [line["error"]["code"] for line in unrun] == ["batch_cancelled"] * 3
    with pytest.raises(openai.ConflictError) as caught:
        client.batches.cancel(batch.id)
    assert caught.value.status_code == 409
    assert (
        caught.value.message == "Error code: 409 - Cannot cancel a batch with status 'cancelled'."
    )


# --- pagination ------------------------------------------------------------------------------


def test_batches_and_files_auto_paginate_over_several_pages(scaigrid: Scaigrid) -> None:
    client = strict(scaigrid)
    uploads = [
        client.files.create(file=jsonl([chat_line(f"f{i}")]), purpose="batch") for i in range(5)
    ]
    made = [
        client.batches.create(input_file_id=f.id, endpoint=CHAT, completion_window="24h")
        for f in uploads
    ]
    scaigrid.advance(0)
    batches = [b.id for b in client.batches.list(limit=2)]
    assert batches == [b.id for b in reversed(made)]  # newest first, over three pages
    files = [f.id for f in client.files.list(limit=2, purpose="batch")]
    assert files == [f.id for f in reversed(uploads)]
    oldest_first = [f.id for f in client.files.list(limit=3, purpose="batch", order="asc")]
    assert oldest_first == [f.id for f in uploads]
    pages = scaigrid.journal(path="/oai/v1/batches", method="GET")
    assert [p["query"] for p in pages] == [
        "limit=2",
        f"limit=2&after={made[3].id}",
        f"limit=2&after={made[1].id}",
    ]


async def test_async_auto_pagination(scaigrid: Scaigrid) -> None:
    client = strict_async(scaigrid)
    uploads = [await client.files.create(file=b"{}\n", purpose="user_data") for _ in range(3)]
    seen = [f.id async for f in client.files.list(limit=1)]
    assert seen == [f.id for f in reversed(uploads)]
    await client.close()


# --- errors and retries ------------------------------------------------------------------------


def test_the_sdk_error_classes(scaigrid: Scaigrid) -> None:
    client = strict(scaigrid, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.batches.create(
            input_file_id="file-x", endpoint="/v1/nowhere", completion_window="24h"
        )  # type: ignore[arg-type]
    assert bad.value.param == "endpoint" and bad.value.type == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        scaigrid.openai_client(api_key="sk-not-a-scaigrid-key", max_retries=0).models.list()
    assert unauthenticated.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.retrieve("batch_000000000000000000000000")
    assert missing.value.code == "batch_not_found"
    assert missing.value.request_id and missing.value.request_id.startswith("req_")

    upload = client.files.create(file=jsonl([chat_line("a")]), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint=CHAT, completion_window="24h")
    scaigrid.advance(0)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)

    scaigrid.use_scenario("name: full\nlimits: {max_active_batches: 0}\n")
    with pytest.raises(openai.RateLimitError) as limited:
        client.batches.create(input_file_id=upload.id, endpoint=CHAT, completion_window="24h")
    assert limited.value.code == "insufficient_quota"


def test_the_sdk_retries_honouring_retry_after(scaigrid: Scaigrid) -> None:
    scaigrid.use_scenario(
        "name: blip\napi_faults:\n"
        '  - match: {route: "/oai/v1/batches", method: GET, calls: [1]}\n'
        "    error: {code: MODEL_UNAVAILABLE, status: 503, retry_after: 1}\n"
    )
    retries: list[str] = []

    def note(request: httpx.Request) -> None:
        retries.append(request.headers["x-stainless-retry-count"])

    http = httpx.Client(event_hooks={"request": [note]})
    client = strict(scaigrid, http_client=http)  # the SDK's default: two retries
    started = time.monotonic()
    assert list(client.batches.list()) == []
    # the first retry of an exponential back-off comes after at most 0.5 s: waiting a whole
    # second is the Retry-After header at work
    assert time.monotonic() - started >= 1.0
    assert retries == ["0", "1"]
    statuses = [e["status"] for e in scaigrid.journal(path="/oai/v1/batches")]
    assert statuses == [503, 200]
    http.close()


# --- live inference and models -----------------------------------------------------------------


def test_streaming_chat_sync_matches_the_plain_answer(scaigrid: Scaigrid) -> None:
    client = strict(scaigrid)
    messages: list[Any] = [{"role": "user", "content": "Tell me about boats"}]
    plain = client.chat.completions.create(model=MODEL, messages=messages)
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_streaming_chat_async(scaigrid: Scaigrid) -> None:
    client = strict_async(scaigrid)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    await client.close()


def test_tools_and_response_format(scaigrid: Scaigrid) -> None:
    client = strict(scaigrid)
    tool: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    called = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather?"}], tools=[tool]
    )
    (call,) = called.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(orjson.loads(call.function.arguments)["city"], str)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    shaped = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A number"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    assert isinstance(orjson.loads(shaped.choices[0].message.content or "")["n"], int)


def test_embeddings_completions_and_models(scaigrid: Scaigrid) -> None:
    client = strict(scaigrid)
    # strict validation checks the body before the SDK decodes base64, so ask for floats
    vectors = client.embeddings.create(
        model="openai/text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 1536
    lax = scaigrid.openai_client()  # the SDK's default: base64 on the wire, floats for the caller
    assert lax.embeddings.create(model="openai/text-embedding-3-small", input="a").data[0].embedding
    text = client.completions.create(model=MODEL, prompt="Once upon a time")
    assert text.choices[0].text and text.object == "text_completion"
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o" in ids
    assert client.models.retrieve("openai/gpt-4o").owned_by == "openai"


# --- the README --------------------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_the_readme_sdk_example_runs(scaigrid: Scaigrid, in_tmp: Path, capsys: Any) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "/oai/v1" in b)
    assert len([line for line in block.splitlines() if line.strip()]) == 5
    (in_tmp / "openai-input.jsonl").write_bytes(jsonl([chat_line("req-1"), chat_line("req-2")]))
    code = block.replace("http://127.0.0.1:8080", scaigrid.base_url)
    code = code.replace("sgk_0123456789abcdef0123456789abcdef", scaigrid.api_key)
    exec(compile(code, "README.md", "exec"), {})
    batch_id, status = capsys.readouterr().out.split()[:2]
    assert status == "validating"
    scaigrid.advance(0)
    batch = strict(scaigrid).batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.completed == 2
