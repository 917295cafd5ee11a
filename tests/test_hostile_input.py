"""Hostile input, one class a test: each is answered with its documented code (never a 5xx), the
emulator answers the next request, and nothing is stored half-way (the store's rows are counted
before and after). Slow bodies and many connections, which need a socket: test_hostile_connections.
"""

from __future__ import annotations

import base64
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from conftest import CHAT, Harness, assert_error, b64, chat_line, jsonl

from emulator.api.http import MAX_BODY_BYTES
from emulator.batch.parsing import MAX_LINE_BYTES

MIB = 1 << 20
BATCH = "/v1/inference/batch"
OAI_BATCHES = "/oai/v1/batches"
TABLES = ("files", "file_chunks", "batches", "requests", "results", "webhooks")
CHAT_BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


async def rows(emu: Harness) -> dict[str, int]:
    """Every table a write could leave something in, counted."""
    db = emu.core.store._db
    out = {}
    for table in TABLES:
        async with db.execute(f"SELECT count(*) FROM {table}") as cursor:  # noqa: S608
            out[table] = (await cursor.fetchone())[0]
    return out


async def alive(emu: Harness) -> None:
    resp = await emu.client.post(CHAT, json=CHAT_BODY)
    assert resp.status_code == 200, resp.text


#: body routes of each surface, with the code a body it cannot read gets
BODY_ROUTES = [
    ("POST", BATCH, 422, "VALIDATION_ERROR"),
    ("POST", CHAT, 422, "VALIDATION_ERROR"),
    ("POST", "/v1/webhooks", 422, "VALIDATION_ERROR"),
    ("PUT", "/_emulator/clock", 422, "VALIDATION_ERROR"),
    ("POST", OAI_BATCHES, 400, "invalid_request_error"),
    ("POST", "/oai/v1/chat/completions", 400, "invalid_request_error"),
]


def assert_refused(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The documented error, in the envelope or, on the OpenAI surface, in OpenAI's body."""
    if resp.request.url.path.startswith("/oai/"):
        assert resp.status_code == status, resp.text
        error: dict[str, Any] = resp.json()["error"]
        assert error["type"] == code and error["message"]
        return error
    return assert_error(resp, status, code)


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"model": "x",}', b"[]", b"", b"\xff\xfe{}", b'{"a": "\x00"}', b"nul\x00"],
    ids=["open", "trailing-comma", "array", "empty", "invalid-utf8", "raw-nul", "nul"],
)
@pytest.mark.parametrize(("method", "path", "status", "code"), BODY_ROUTES)
async def test_broken_json_invalid_utf8_and_nul_bytes(
    emu: Harness, method: str, path: str, status: int, code: str, raw: bytes
) -> None:
    before = await rows(emu)
    resp = await emu.client.request(method, path, content=raw)
    assert_refused(resp, status, code)
    assert await rows(emu) == before
    await alive(emu)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (BATCH, {"input_file_base64": 5}, "input_file_base64"),
        (BATCH, {"input_file_url": ["x"]}, "input_file_url"),
        (BATCH, {"input_file_base64": b64([chat_line("a")]), "metadata": []}, "metadata"),
        (BATCH, {"input_file_base64": b64([chat_line("a")]), "metadata": {"k": 1}}, "metadata"),
        (CHAT, {**CHAT_BODY, "max_tokens": "ten"}, "max_tokens"),
        (CHAT, {**CHAT_BODY, "messages": {"role": "user"}}, "messages"),
        ("/v1/webhooks", {"url": 7, "events": ["batch.completed"], "secret": "s" * 32}, "url"),
        ("/_emulator/clock/advance", {"seconds": "60"}, "seconds"),
    ],
)
async def test_wrong_types(emu: Harness, path: str, body: dict[str, Any], field: str) -> None:
    before = await rows(emu)
    error = assert_error(await emu.client.post(path, json=body), 422, "VALIDATION_ERROR")
    assert field in orjson.dumps(error).decode()
    assert await rows(emu) == before
    await alive(emu)


async def test_a_huge_line_fails_its_batch_and_is_never_held(emu: Harness) -> None:
    """A 48 MiB line with no newline, uploaded and submitted: the parser keeps at most its limit
    of it (8 MiB) and the batch fails naming the line. Before, the whole line was held, and
    joined again for every 1 MiB chunk."""
    size = 48 * MIB

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="h.jsonl"\r\n\r\n'
        yield jsonl([chat_line("fine")])
        for _ in range(size // MIB):
            yield b"x" * MIB
        yield b"\n" + jsonl([chat_line("after")]) + b"\r\n--b--\r\n"

    upload = await emu.client.post(
        "/v1/files", content=body(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["data"]["id"]
    resp = await emu.client.post(BATCH, json={"input_file_url": f"scaigrid://file/{file_id}"})
    assert resp.status_code == 200, resp.text
    tracemalloc.start()
    try:
        await emu.settle()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failed = await emu.batch(resp.json()["data"]["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["details"] == [
        {"line": 2, "message": f"line is over {MAX_LINE_BYTES} bytes"}
    ]
    assert (await rows(emu))["requests"] == 0  # the good lines were not kept either
    assert peak < 2 * MAX_LINE_BYTES + 4 * MIB, f"peak {peak / MIB:.1f} MiB for a 48 MiB line"
    print(f"peak {peak / MIB:.1f} MiB for a 48 MiB line")  # shown with -s
    await alive(emu)


async def test_deep_nesting(emu: Harness) -> None:
    """Past orjson's 1,024 levels the body is not JSON it reads; between what it reads and what
    the emulator can write again, the request is refused; a batch line gets the same answer as
    its error record, and the batch completes."""
    too_deep = b"[" * 100_000 + b"]" * 100_000
    error = assert_error(await emu.client.post(CHAT, content=too_deep), 422, "VALIDATION_ERROR")
    assert "not valid JSON" in error["message"]
    content = b"[" * 1000 + b"]" * 1000
    deep = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": %s}]}' % content
    error = assert_error(await emu.client.post(CHAT, content=deep), 422, "VALIDATION_ERROR")
    assert error["message"] == "Request body is nested too deeply."
    line = b'{"custom_id": "deep", "method": "POST", "url": "%s", "body": %s}' % (
        CHAT.encode(),
        deep,
    )
    batch = await emu.submit([line, chat_line("fine")])
    await emu.settle()
    results = {r["custom_id"]: r for r in await emu.results(batch["id"])}
    assert results["deep"]["error"]["code"] == "VALIDATION_ERROR"
    assert results["fine"]["response"] is not None
    await alive(emu)


async def test_objects_of_100000_keys(emu: Harness) -> None:
    """Answered at once, and the answer names a few of them, not all."""
    many = {f"k{i}": i for i in range(100_000)}
    before = await rows(emu)
    resp = await emu.client.put("/_emulator/clock", json=many)
    error = assert_error(resp, 422, "VALIDATION_ERROR")
    assert len(error["details"]) == 20 and "(and 99980 more)" in error["message"]
    assert len(resp.content) < 10_000
    meta = {"input_file_base64": b64([chat_line("a")]), "metadata": many}
    assert "at most 16 keys" in str(assert_error(await emu.client.post(BATCH, json=meta), 422,
                                                 "VALIDATION_ERROR"))  # fmt: skip
    hook = {"url": "http://hooks.test/x", "events": ["batch.completed"], **many}
    assert_error(await emu.client.post("/v1/webhooks", json=hook), 422, "VALIDATION_ERROR")
    # an inference body takes keys it does not know, as the real one does: still one answer
    assert (await emu.client.post(CHAT, json={**CHAT_BODY, **many})).status_code == 200
    assert await rows(emu) == before
    await alive(emu)


async def test_duplicate_custom_ids_fail_the_batch_with_nothing_kept(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a"), chat_line("b"), chat_line("a")])
    await emu.settle()
    failed = await emu.batch(batch["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "INPUT_PARSE_ERROR"
    assert failed["error"]["details"] == [{"line": 3, "message": "duplicate custom_id 'a'"}]
    assert failed["results_url"] is None
    counts = await rows(emu)
    assert (counts["requests"], counts["results"]) == (0, 0)
    await alive(emu)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"k": "v" * 10 * MIB}, "at most 512"),
        ({"k" * 100_000: "v"}, "longer than 64"),
        ({f"k{i}": "v" for i in range(17)}, "at most 16 keys"),
        ({"k": {"nested": "v"}}, "string"),
    ],
    ids=["10-mib-value", "100k-key", "17-keys", "object-value"],
)
async def test_giant_metadata(emu: Harness, metadata: dict[str, Any], message: str) -> None:
    before = await rows(emu)
    for path, body in (
        (BATCH, {"input_file_base64": b64([chat_line("a")]), "metadata": metadata}),
        (OAI_BATCHES, {"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                       "completion_window": "24h", "metadata": metadata}),
    ):  # fmt: skip
        resp = await emu.client.post(path, json=body)
        if path == BATCH:
            assert message in assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["message"]
        else:
            assert_refused(resp, 400, "invalid_request_error")
    assert await rows(emu) == before
    await alive(emu)


@pytest.mark.parametrize(
    "text",
    ["!!!", "a", "abc=", "YQ==YQ==", "YQ\n==", "ä", "", base64.b64encode(b"\xff\x00").decode()],
)
async def test_bad_base64(emu: Harness, text: str) -> None:
    """Not base64, or base64 of what is not an input: 422 at submit, or a failed batch; either
    way no requests are kept."""
    before = await rows(emu)
    resp = await emu.client.post(BATCH, json={"input_file_base64": text})
    if resp.status_code == 200:  # it decodes: the bytes are checked as JSONL, and fail
        await emu.settle()
        failed = await emu.batch(resp.json()["data"]["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "INPUT_PARSE_ERROR"
        assert (await rows(emu))["requests"] == 0
    else:
        assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == (
            "input_file_base64"
        )
        assert await rows(emu) == before
    await alive(emu)


SCAIDRIVE_ESCAPES = [
    "scaidrive://../outside.jsonl",
    "scaidrive:///../outside.jsonl",
    "scaidrive://inside/../../outside.jsonl",
    "scaidrive://%2e%2e/outside.jsonl",
    "scaidrive://link.jsonl",  # a symlink inside the root, to the file outside it
    "scaidrive://a%00b",
    "scaidrive://" + "a" * 5000,
    "scaidrive://inside",  # a folder
]


@pytest.mark.parametrize("url", SCAIDRIVE_ESCAPES)
async def test_path_traversal_in_scaidrive_urls(make_emu: Any, tmp_path: Path, url: str) -> None:
    root = tmp_path / "drive"
    (root / "inside").mkdir(parents=True)
    (tmp_path / "outside.jsonl").write_bytes(jsonl([chat_line("secret")]))
    (root / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    emu = await make_emu(scaidrive_root=root)
    error = assert_error(
        await emu.client.post(BATCH, json={"input_file_url": url}), 422, "VALIDATION_ERROR"
    )
    assert error["details"][0]["field"] == "input_file_url"
    assert await rows(emu) == dict.fromkeys(TABLES, 0)
    await alive(emu)


@pytest.mark.parametrize(
    "file_id", ["../x", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "file-1/../file-1", "file-\x00", "é"]
)
async def test_path_traversal_in_file_ids(emu: Harness, file_id: str) -> None:
    """A file id is looked up as a name, never as a path: whatever it holds, no such file."""
    await emu.client.post("/v1/files", files={"file": ("a.jsonl", jsonl([chat_line("a")]))})
    before = await rows(emu)
    resp = await emu.client.post(BATCH, json={"input_file_url": f"scaigrid://file/{file_id}"})
    assert_error(resp, 404, "FILE_NOT_FOUND")
    in_path = quote(file_id, safe="%/.")
    for path in (f"/v1/files/{in_path}", f"/v1/files/{in_path}/content"):
        resp = await emu.client.get(path)
        assert resp.status_code == 404 and resp.json()["error"]["code"] in (
            "FILE_NOT_FOUND",
            "NOT_FOUND",
        )
    resp = await emu.client.post(
        OAI_BATCHES,
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
              "completion_window": "24h"},
    )  # fmt: skip
    assert assert_refused(resp, 400, "invalid_request_error")["param"] == "input_file_id"
    assert await rows(emu) == before
    await alive(emu)


class Pulled:
    """A request body of `total` bytes that counts how much of it the server read."""

    def __init__(self, head: bytes, total: int, tail: bytes = b"") -> None:
        self.head, self.total, self.tail, self.sent = head, total, tail, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        self.sent = len(self.head)
        while self.sent < self.total:
            yield b"A" * MIB
            self.sent += MIB
        yield self.tail


@pytest.mark.parametrize("path", [BATCH, CHAT, "/oai/v1/chat/completions", "/_emulator/sink/s"])
async def test_an_oversized_body_is_refused_as_it_arrives(emu: Harness, path: str) -> None:
    """A 256 MiB body: refused once past the limit, with the rest never read."""
    body = Pulled(b'{"input_file_base64": "', 256 * MIB, b'"}')
    before = await rows(emu)
    resp = await emu.client.post(path, content=body)
    oai = path.startswith("/oai/")
    assert_refused(resp, *((400, "invalid_request_error") if oai else (422, "VALIDATION_ERROR")))
    # (`sent` counts what the server asked for before the chunk that took it over the limit)
    assert MAX_BODY_BYTES - MIB <= body.sent <= MAX_BODY_BYTES + MIB
    assert await rows(emu) == before
    await alive(emu)


async def test_an_oversized_upload_is_refused_as_it_arrives(make_emu: Any) -> None:
    """A file over `--max-input-bytes`: QUOTA_EXCEEDED once past it, and none of it stored."""
    emu = await make_emu(max_input_bytes=8 * MIB)
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'
    body = Pulled(head, 256 * MIB, b"\r\n--b--\r\n")
    resp = await emu.client.post(
        "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert body.sent <= 8 * MIB + 2 * MIB
    assert await rows(emu) == dict.fromkeys(TABLES, 0)
    await alive(emu)


async def test_an_oversized_part_header_is_refused(emu: Harness) -> None:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
    body = Pulled(head, 64 * MIB, b'"\r\n\r\nx\r\n--b--\r\n')
    resp = await emu.client.post(
        "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    error = assert_error(resp, 422, "VALIDATION_ERROR")  # python-multipart bounds it (4 KiB)
    assert "Maximum header size exceeded" in error["details"][0]["message"]
    assert body.sent <= MIB
    assert await rows(emu) == dict.fromkeys(TABLES, 0)
    await alive(emu)
