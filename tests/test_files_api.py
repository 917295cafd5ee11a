"""The files API (/v1/files): multipart upload, the file object, content, list, delete, limits and
tenant isolation. In-process (httpx ASGI transport), on the emulator's frozen clock."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import Harness, assert_error, chat_line, jsonl, key

from emulator.batch.files import CHUNK_BYTES, CHUNKS_PER_WRITE

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
START_ISO = "2026-01-01T00:00:00.000Z"
MakeEmu = Callable[..., Awaitable[Harness]]


async def upload(
    client: httpx.AsyncClient,
    content: bytes,
    filename: str = "input.jsonl",
    purpose: str | None = None,
) -> httpx.Response:
    data = {} if purpose is None else {"purpose": purpose}
    return await client.post(
        "/v1/files", files={"file": (filename, content, "application/jsonl")}, data=data
    )


async def upload_ok(client: httpx.AsyncClient, content: bytes, **kw: Any) -> dict[str, Any]:
    resp = await upload(client, content, **kw)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    data: dict[str, Any] = body["data"]
    return data


def assert_validation(resp: httpx.Response, field: str) -> None:
    error = assert_error(resp, 422, "VALIDATION_ERROR")
    assert any(d.get("field") == field for d in error["details"]), error


async def file_ids(client: httpx.AsyncClient) -> list[str]:
    resp = await client.get("/v1/files", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return [f["id"] for f in resp.json()["data"]["items"]]


# --- upload and the file object ------------------------------------------------------------------


async def test_upload_returns_the_file_object(emu: Harness) -> None:
    content = jsonl([chat_line("a"), chat_line("b"), chat_line("c")])
    f = await upload_ok(emu.client, content, filename="jobs.jsonl", purpose="batch")
    assert re.fullmatch(r"file-[0-9a-f]+", f["id"])
    assert f["filename"] == "jobs.jsonl"
    assert f["bytes"] == len(content)
    assert f["purpose"] == "batch"
    assert f["line_count"] == 3
    assert f["sha256"] == hashlib.sha256(content).hexdigest()
    assert ISO_MS.match(f["created_at"])
    assert f["created_at"] == START_ISO  # the emulator's frozen clock
    assert f["url"] == f"scaigrid://file/{f['id']}"
    # and GET answers the same object
    resp = await emu.client.get(f"/v1/files/{f['id']}")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "data": f}


async def test_purpose_defaults_to_batch_and_may_be_another_documented_one(emu: Harness) -> None:
    assert (await upload_ok(emu.client, b"{}\n"))["purpose"] == "batch"
    assert (await upload_ok(emu.client, b"{}\n", purpose="user_data"))["purpose"] == "user_data"


async def test_created_at_follows_the_emulator_clock(emu: Harness) -> None:
    await emu.advance(90.5)
    f = await upload_ok(emu.client, b"{}\n")
    assert f["created_at"] == "2026-01-01T00:01:30.500Z"


@pytest.mark.parametrize(
    ("content", "lines"),
    [
        (b"", 0),
        (b"\n\n  \n\t\n", 0),  # only blank lines
        (b"{}", 1),  # no trailing newline
        (b"{}\n", 1),
        (b"{}\n\n{}\n   \n{}", 3),  # blank lines in between are not counted
        (b"{}\r\n{}\r\n", 2),
    ],
)
async def test_line_count_counts_non_blank_lines(emu: Harness, content: bytes, lines: int) -> None:
    f = await upload_ok(emu.client, content)
    assert f["line_count"] == lines
    assert f["bytes"] == len(content)
    assert f["sha256"] == hashlib.sha256(content).hexdigest()


async def test_a_multi_mib_upload_comes_back_byte_identical(emu: Harness) -> None:
    # ~3 MiB: several 1 MiB store chunks, with lines crossing the chunk boundaries and some blank.
    lines: list[bytes] = []
    size = i = 0
    while size < 3 * CHUNK_BYTES + 12345:
        line = b'{"custom_id": "r-%07d", "pad": "%s"}\n' % (i, b"x" * (i % 97))
        lines.append(line + b"\n" if i % 1000 == 0 else line)
        size += len(lines[-1])
        i += 1
    content = b"".join(lines)
    expected_lines = len(lines)  # every line has content; the extra newlines make blank ones
    assert len(content) > 3 * CHUNK_BYTES
    f = await upload_ok(emu.client, content, filename="big.jsonl")
    assert f["bytes"] == len(content)
    assert f["sha256"] == hashlib.sha256(content).hexdigest()
    assert f["line_count"] == expected_lines
    resp = await emu.client.get(f"/v1/files/{f['id']}/content")
    assert resp.status_code == 200
    assert resp.content == content
    assert hashlib.sha256(resp.content).hexdigest() == f["sha256"]
    assert resp.headers["content-length"] == str(len(content))


@pytest.mark.parametrize(
    ("filename", "ascii_name"),
    [
        ("jobs.jsonl", "jobs.jsonl"),
        ("données été.jsonl", "donn_es _t_.jsonl"),
        ("文件.jsonl", "__.jsonl"),
    ],
)
async def test_content_keeps_the_filename(emu: Harness, filename: str, ascii_name: str) -> None:
    f = await upload_ok(emu.client, b"{}\n", filename=filename)
    assert f["filename"] == filename
    resp = await emu.client.get(f"/v1/files/{f['id']}/content")
    assert resp.status_code == 200, resp.text
    assert resp.content == b"{}\n"
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="{ascii_name}"; ')
    assert disposition.endswith("filename*=UTF-8''" + quote(filename, safe=""))


async def test_content_of_an_empty_file(emu: Harness) -> None:
    f = await upload_ok(emu.client, b"")
    resp = await emu.client.get(f"/v1/files/{f['id']}/content")
    assert resp.status_code == 200
    assert resp.content == b""


# --- list ----------------------------------------------------------------------------------------


async def test_list_is_newest_first_with_cursor_pagination(emu: Harness) -> None:
    made = []
    for i in range(5):
        made.append((await upload_ok(emu.client, b"{}\n", filename=f"f{i}.jsonl"))["id"])
        await emu.advance(1)
    seen: list[str] = []
    pages = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        resp = await emu.client.get("/v1/files", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "ok"
        items = body["data"]["items"]
        pages.append(len(items))
        seen += [f["id"] for f in items]
        pagination = body["pagination"]
        cursor = pagination["next_cursor"]
        assert pagination["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == list(reversed(made))


async def test_list_page_that_ends_exactly_has_no_cursor(emu: Harness) -> None:
    for _ in range(2):
        await upload_ok(emu.client, b"{}\n")
    body = (await emu.client.get("/v1/files", params={"limit": 2})).json()
    assert len(body["data"]["items"]) == 2
    assert body["pagination"] == {"has_more": False, "next_cursor": None}


async def test_list_filters_by_purpose(emu: Harness) -> None:
    a = await upload_ok(emu.client, b"{}\n", purpose="batch")
    await upload_ok(emu.client, b"{}\n", purpose="user_data")
    resp = await emu.client.get("/v1/files", params={"purpose": "batch"})
    assert [f["id"] for f in resp.json()["data"]["items"]] == [a["id"]]
    assert_validation(await emu.client.get("/v1/files", params={"purpose": "nope"}), "purpose")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "c2VxOmFiYw"}, "cursor"),  # base64 of "seq:abc"
        ({"cursor": "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, "cursor"),  # "seq:" + 24 nines
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
async def test_list_refuses_bad_cursor_or_limit(
    emu: Harness, params: dict[str, str], field: str
) -> None:
    assert_validation(await emu.client.get("/v1/files", params=params), field)


async def test_list_limit_100_is_allowed(emu: Harness) -> None:
    resp = await emu.client.get("/v1/files", params={"limit": 100})
    assert resp.status_code == 200
    assert resp.json()["data"]["items"] == []


# --- delete --------------------------------------------------------------------------------------


async def test_delete_then_every_route_is_404(emu: Harness) -> None:
    keep = await upload_ok(emu.client, b"{}\n")
    f = await upload_ok(emu.client, b'{"a": 1}\n')
    resp = await emu.client.delete(f"/v1/files/{f['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "status": "ok",
        "data": {"id": f["id"], "object": "file", "deleted": True},
    }
    for method, path in [
        ("GET", f"/v1/files/{f['id']}"),
        ("GET", f"/v1/files/{f['id']}/content"),
        ("DELETE", f"/v1/files/{f['id']}"),
    ]:
        assert_error(await emu.client.request(method, path), 404, "FILE_NOT_FOUND")
    assert await file_ids(emu.client) == [keep["id"]]


async def test_unknown_file_is_404(emu: Harness) -> None:
    error = assert_error(await emu.client.get("/v1/files/file-nope"), 404, "FILE_NOT_FOUND")
    assert "file-nope" in error["message"]


# --- malformed uploads ---------------------------------------------------------------------------


async def test_missing_file_part_is_422(emu: Harness) -> None:
    resp = await emu.client.post("/v1/files", files={"other": ("x.jsonl", b"{}\n")})
    assert_validation(resp, "file")
    resp = await emu.client.post("/v1/files", data={"purpose": "batch"})
    assert_validation(resp, "file")


async def test_file_given_as_a_plain_field_is_422(emu: Harness) -> None:
    resp = await emu.client.post(
        "/v1/files", files={"purpose": (None, "batch")}, data={"file": "x"}
    )
    assert_validation(resp, "file")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"file": "abc"}', "application/json"),
        (b"just text", "text/plain"),
        (b"", None),
        (b"--nope\r\ngarbage", "multipart/form-data; boundary=nope"),
        (b"garbage", "multipart/form-data"),  # no boundary
    ],
)
async def test_non_multipart_body_is_422(
    emu: Harness, content: bytes, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    resp = await emu.client.post("/v1/files", content=content, headers=headers)
    assert_validation(resp, "file")
    assert await file_ids(emu.client) == []


@pytest.mark.parametrize("purpose", ["nope", "", "BATCH"])
async def test_bad_purpose_is_422_and_stores_nothing(emu: Harness, purpose: str) -> None:
    assert_validation(await upload(emu.client, b"{}\n", purpose=purpose), "purpose")
    assert await file_ids(emu.client) == []


async def test_no_authorization_is_401(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        resp = await upload(anon, b"{}\n")
        assert_error(resp, 401, "AUTH_TOKEN_MISSING")
        assert_error(await anon.get("/v1/files"), 401, "AUTH_TOKEN_MISSING")


# --- limits --------------------------------------------------------------------------------------


async def test_upload_over_max_input_bytes_is_quota_exceeded_and_stores_nothing(
    make_emu: MakeEmu,
) -> None:
    emu = await make_emu(max_input_bytes=1000)
    ok = await upload_ok(emu.client, b"x" * 1000)  # exactly the limit is allowed
    resp = await upload(emu.client, b"x" * 1001)
    error = assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert "retry_after" not in error
    assert "retry-after" not in resp.headers
    assert "1000" in error["message"]
    assert await file_ids(emu.client) == [ok["id"]]
    # no stray chunks either: every stored chunk belongs to a stored file
    rows = await emu.core.store._all(
        "SELECT COUNT(*) FROM file_chunks WHERE file_seq NOT IN (SELECT seq FROM files)"
    )
    assert rows[0][0] == 0


async def test_large_upload_over_the_limit_stores_no_chunks(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_input_bytes=2 * CHUNK_BYTES)
    resp = await upload(emu.client, b"y" * (3 * CHUNK_BYTES))
    assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert await file_ids(emu.client) == []
    rows = await emu.core.store._all("SELECT COUNT(*) FROM file_chunks")
    assert rows[0][0] == 0


async def test_a_quota_refusal_with_a_write_in_flight_stores_no_chunks(make_emu: MakeEmu) -> None:
    """Chunks are written while the next ones are read; a refusal past the limit waits for the
    write in flight and then deletes everything, and the next upload starts clean."""
    writes = CHUNKS_PER_WRITE * CHUNK_BYTES
    emu = await make_emu(max_input_bytes=2 * writes + CHUNK_BYTES)
    resp = await upload(emu.client, b"y" * (3 * writes))
    assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert (await emu.core.store._all("SELECT COUNT(*) FROM file_chunks"))[0][0] == 0
    f = await upload_ok(emu.client, b"{}\n")
    assert (await emu.client.get(f"/v1/files/{f['id']}/content")).content == b"{}\n"


async def test_a_file_of_many_writes_reads_back_byte_for_byte(make_emu: MakeEmu) -> None:
    """Three writes of chunks and a short tail, written while the body is still being read,
    come back in order."""
    emu = await make_emu()
    lines = b"".join(b'{"n": %d}\n' % i for i in range(3 * CHUNKS_PER_WRITE * CHUNK_BYTES // 10))
    f = await upload_ok(emu.client, lines)
    assert f["bytes"] == len(lines) and f["line_count"] == lines.count(b"\n")
    assert (await emu.client.get(f"/v1/files/{f['id']}/content")).content == lines


# --- tenant isolation ----------------------------------------------------------------------------


async def test_another_tenant_cannot_see_or_touch_a_file(emu: Harness) -> None:
    f = await upload_ok(emu.client, b"{}\n")
    async with emu.client_for(key("intruder")) as other:
        for method, path in [
            ("GET", f"/v1/files/{f['id']}"),
            ("GET", f"/v1/files/{f['id']}/content"),
            ("DELETE", f"/v1/files/{f['id']}"),
        ]:
            assert_error(await other.request(method, path), 404, "FILE_NOT_FOUND")
        assert await file_ids(other) == []
        mine = await upload_ok(other, b"{}\n")
        assert await file_ids(other) == [mine["id"]]
    # the owner still has it, untouched
    assert await file_ids(emu.client) == [f["id"]]
    resp = await emu.client.get(f"/v1/files/{f['id']}/content")
    assert resp.content == b"{}\n"


# --- durability ----------------------------------------------------------------------------------


async def test_an_upload_cut_off_by_a_crash_leaves_nothing_behind(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    db = str(tmp_path / "files.db")
    emu = await make_emu(db=db)
    kept = await upload_ok(emu.client, b"{}\n")
    # What a crash half-way through a large upload leaves: stored chunks of the next file, whose
    # row was never written.
    store = emu.core.store
    await store.insert_file_chunks(await store.max_seq("files") + 1, [(0, b"x" * 10), (1, b"y")])
    await emu.close()
    await emu.core.stop()
    emu = await make_emu(db=db)
    rows = await emu.core.store._all("SELECT COUNT(*) FROM file_chunks")
    assert rows[0][0] == 1  # only the kept file's chunk
    f = await upload_ok(emu.client, b'{"a": 1}\n')
    resp = await emu.client.get(f"/v1/files/{f['id']}/content")
    assert resp.status_code == 200
    assert resp.content == b'{"a": 1}\n'
    assert await file_ids(emu.client) == [f["id"], kept["id"]]
