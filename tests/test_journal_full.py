"""The full journal: headers and bodies of each exchange, capped, with every secret redacted, held
under a byte budget; the filters of GET /_emulator/journal and the 422 naming a bad one; the
journal across a restart (summaries only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import KEY, OTHER_KEY, Harness, assert_error, chat_line

from emulator.journal import BODY_CAP, redact
from emulator.tenancy import open_tenant_id

TENANT = open_tenant_id(KEY)
OTHER = open_tenant_id(OTHER_KEY)
MakeEmu = Callable[..., Awaitable[Harness]]


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


async def journal(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(await client.get("/_emulator/journal", params=params))["items"]
    return items


async def test_an_entry_carries_headers_and_bodies(emu: Harness) -> None:
    body = chat_line("x", "Hello there")["body"]
    resp = await emu.client.post("/v1/inference/chat", json=body, headers={"X-Trace": "t-1"})
    assert resp.status_code == 200
    [entry] = await journal(emu.client, path="/v1/inference/chat")
    request, response = entry["request"], entry["response"]
    assert request["headers"]["x-trace"] == "t-1"
    assert request["headers"]["content-type"] == "application/json"
    assert orjson.loads(request["body"]) == body
    assert request["size"] == len(request["body"]) and request["truncated"] is False
    assert response["headers"]["x-request-id"] == entry["request_id"]
    assert response["headers"]["content-type"].startswith("application/json")
    assert orjson.loads(response["body"]) == resp.json()
    assert response["truncated"] is False


async def test_authorization_and_keys_are_redacted(emu: Harness) -> None:
    await emu.client.get("/v1/models")
    # a key in a JSON body and in a query string
    await emu.client.post("/_emulator/reset", json={"api_key": OTHER_KEY})
    await emu.client.get("/v1/models", params={"note": OTHER_KEY})
    text = (await emu.client.get("/_emulator/journal")).text
    assert KEY not in text and OTHER_KEY not in text
    entries = await journal(emu.client)
    assert entries[0]["request"]["headers"]["authorization"] == "Bearer sgk_…aaaa"
    assert orjson.loads(entries[1]["request"]["body"]) == {"api_key": "sgk_…bbbb"}
    assert entries[2]["query"] == "note=sgk_…bbbb"


async def test_a_non_key_authorization_is_hidden_whole(make_emu: MakeEmu) -> None:
    h = await make_emu(admin_token="t0ken-secret")
    async with h.client_for(None) as anon:
        await anon.get("/_emulator/clock", headers={"Authorization": "Bearer t0ken-secret"})
        await anon.get("/_emulator/clock", headers={"X-Emulator-Admin-Token": "t0ken-secret"})
        resp = await anon.get(
            "/_emulator/journal", headers={"X-Emulator-Admin-Token": "t0ken-secret"}
        )
    assert "t0ken-secret" not in resp.text
    first, second = resp.json()["data"]["items"][:2]
    assert first["request"]["headers"]["authorization"] == "Bearer [redacted]"
    assert second["request"]["headers"]["x-emulator-admin-token"] == "[redacted]"


async def test_a_webhook_secret_is_redacted_in_requests_and_answers(emu: Harness) -> None:
    secret = "whsec_" + "9" * 40
    hook = {"url": "http://emulator.test/_emulator/sink/j", "secret": secret}
    ok(await emu.client.post("/v1/webhooks", json=hook))
    text = (await emu.client.get("/_emulator/journal")).text
    assert secret not in text
    [entry] = await journal(emu.client, path="/v1/webhooks")
    assert orjson.loads(entry["request"]["body"])["secret"] == "[redacted]"


def test_redact_covers_truncated_and_escaped_text() -> None:
    assert redact(b'{"secret": "a\\"b", "x": 1}') == b'{"secret": "[redacted]", "x": 1}'
    assert redact(b'{"secret":"abcd') == b'{"secret":"[redacted]"'  # cut by the cap
    assert redact(b"k=sgk_short") == "k=sgk_…".encode()
    assert redact(b"nothing here") == b"nothing here"


async def test_a_large_request_body_is_capped(emu: Harness) -> None:
    big = "x" * (BODY_CAP * 2)
    await emu.client.post("/v1/inference/chat", json=chat_line("x", big)["body"])
    [entry] = await journal(emu.client, path="/v1/inference/chat")
    request = entry["request"]
    assert request["truncated"] is True
    assert len(request["body"].encode()) == BODY_CAP
    assert request["size"] > BODY_CAP * 2


async def test_a_streamed_answer_is_capped_and_never_held_whole(emu: Harness) -> None:
    lines = [chat_line(f"r{i}", "word " * 400) for i in range(200)]
    batch = await emu.submit(lines)
    await emu.advance(24 * 3600)
    url = (await emu.batch(batch["id"]))["results_url"]
    async with emu.client_for(None) as anon:
        full = (await anon.get(url)).content
    assert len(full) > BODY_CAP
    [entry] = await journal(emu.client, path="/v1/inference/batch/*/results")
    assert entry["tenant_id"] == TENANT  # a download is filed under the batch's owner
    response = entry["response"]
    assert response["size"] == len(full) and response["truncated"] is True
    assert response["body"].encode() == full[:BODY_CAP]
    held = max(emu.core.journal._held.values(), key=lambda h: h[4])  # the download
    # what it holds: its headers and the body up to the cap, never the rest of the stream
    assert BODY_CAP < sum(len(x) for x in held if isinstance(x, bytes)) < BODY_CAP + 2048


async def test_a_refused_results_link_is_filed_under_the_batch_owner(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    await emu.advance(0)
    url = (await emu.batch(batch["id"]))["results_url"]
    async with emu.client_for(None) as anon:
        assert_error(await anon.get(url + "0"), 403, "RESULTS_URL_INVALID")
        unknown = "/v1/inference/batch/batch_nope/results"
        assert_error(await anon.get(unknown), 403, "RESULTS_URL_INVALID")
    rows = await journal(emu.client, path="/v1/inference/batch/*/results")
    assert [(e["tenant_id"], e["status"]) for e in rows] == [(TENANT, 403), (None, 403)]


async def test_bodies_are_held_under_a_byte_budget(make_emu: MakeEmu) -> None:
    h = await make_emu(journal_bytes=8 * 1024)
    for n in range(6):
        await h.client.post("/v1/inference/chat", json=chat_line("x", f"{n} " + "y" * 1500)["body"])
    entries = await journal(h.client, path="/v1/inference/chat")
    assert len(entries) == 6  # every summary stays
    held = [e["request"] is not None for e in entries]
    assert held[-1] and not held[0]  # the oldest lost their bodies first
    assert held == sorted(held)
    dropped = entries[0]
    assert dropped["request"] is None and dropped["response"] is None
    assert dropped["status"] == 200 and dropped["request_id"].startswith("req_")
    assert h.core.journal._held_bytes <= 8 * 1024


async def test_one_body_over_the_budget_is_not_held(make_emu: MakeEmu) -> None:
    h = await make_emu(journal_bytes=4 * 1024)
    await h.client.post("/v1/inference/chat", json=chat_line("x", "z" * 10_000)["body"])
    await h.client.get("/v1/inference/batch/batch_nope")
    big, small = await journal(h.client, path="/v1/")
    assert big["request"] is None and big["status"] == 200
    assert orjson.loads(small["response"]["body"])["error"]["code"] == "BATCH_NOT_FOUND"


async def test_after_a_restart_entries_have_summaries_only(
    make_emu: MakeEmu, tmp_path: Path
) -> None:
    db = str(tmp_path / "j.db")
    h = await make_emu(db=db)
    await h.client.get("/v1/models")
    await h.core.durable.save()
    stored = (await h.core.store.load_journal(10))[0]
    assert len(stored) == 7  # the summary: no headers, no bodies in the database
    await h.close()
    await h.core.stop()
    h2 = await make_emu(db=db)
    [entry] = await journal(h2.client, path="/v1/models")
    assert (entry["method"], entry["status"], entry["tenant_id"]) == ("GET", 200, TENANT)
    assert entry["request"] is None and entry["response"] is None


# --- filters --------------------------------------------------------------------------------------


async def calls(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        await emu.client.get("/v1/models")
        await emu.client.get("/v1/inference/batch/batch_nope")
        await emu.advance(3600)
        await other.post("/v1/inference/chat", json=chat_line("x")["body"])
        await other.get("/v1/inference/batch")
        await other.delete("/v1/models")


async def rows(emu: Harness, **params: Any) -> list[tuple[str, str, int]]:
    return [(e["method"], e["path"], e["status"]) for e in await journal(emu.client, **params)]


async def test_each_filter(emu: Harness) -> None:
    await calls(emu)
    everything = await rows(emu, path="/v1/*")
    assert everything == [
        ("GET", "/v1/models", 200),
        ("GET", "/v1/inference/batch/batch_nope", 404),
        ("POST", "/v1/inference/chat", 200),
        ("GET", "/v1/inference/batch", 200),
        ("DELETE", "/v1/models", 405),
    ]
    assert await rows(emu, path="/v1/inference/batch/*") == [everything[1]]
    assert await rows(emu, path="/v1/inference/batch") == everything[1:2] + everything[3:4]
    assert await rows(emu, path="/v1/*/chat") == [everything[2]]
    assert await rows(emu, method="get", path="/v1/*") == [everything[i] for i in (0, 1, 3)]
    assert await rows(emu, status="404") == [everything[1]]
    assert await rows(emu, status="4xx") == [everything[1], everything[4]]
    assert await rows(emu, status="2xx", path="/v1/*") == [everything[i] for i in (0, 2, 3)]
    assert await rows(emu, tenant_id=OTHER) == everything[2:4]  # a 405 names no tenant
    assert await rows(emu, since="2026-01-01T01:00:00Z", path="/v1/*") == everything[2:]
    assert await rows(emu, until="2026-01-01T00:59:59Z", path="/v1/*") == everything[:2]
    window = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    assert await rows(emu, path="/v1/*", **window) == everything[:2]
    assert await rows(emu, path="/v1/*", limit=2) == everything[3:]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "abc"}, "status"),
        ({"status": "6xx"}, "status"),
        ({"status": "42"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"method": "GE T"}, "method"),
        ({"path": "v1/models"}, "path"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"statuses": "200"}, "statuses"),
    ],
)
async def test_a_bad_filter_is_named(emu: Harness, params: dict[str, str], field: str) -> None:
    resp = await emu.client.get("/_emulator/journal", params=params)
    assert_error(resp, 422, "VALIDATION_ERROR")
    error = resp.json()["error"]
    assert [d["field"] for d in error["details"]] == [field]
    assert f"'{field}'" in error["message"]


def test_saves_carry_summaries_with_keys_redacted_and_track_a_bounded_set_of_tenants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a save takes: each entry's summary, a key in a path or query masked; the tenants
    with saved entries are tracked by name up to a bound, and past it any tenant may have some
    (a reset then always asks the store)."""
    from emulator import journal as journal_module

    monkeypatch.setattr(journal_module, "SAVED_TENANTS", 3)
    log = journal_module.Journal(lambda: 1.0)

    def call(path: str, tenant: str, query: bytes = b"") -> None:
        scope = {"method": "GET", "path": path, "query_string": query}
        log.record(scope, 200, tenant, "req_1")

    call(f"/_emulator/tenants/{KEY}/scenario", "ten_a", b"key=" + KEY.encode())
    call("/v1/models", "ten_b")
    saved = log.take_unsaved()
    assert [e[2] for e in saved] == [redact(f"/_emulator/tenants/{KEY}/scenario".encode()).decode(),
                                     "/v1/models"]  # fmt: skip
    assert KEY not in repr(saved) and all(len(e) == 7 for e in saved)
    assert log.take_unsaved() == []
    assert log.saved_any("ten_a") and not log.saved_any("ten_z")
    for tenant in ("ten_c", "ten_d"):
        call("/v1/models", tenant)
    log.take_unsaved()
    assert log.saved_any("ten_z")  # four tenants: past the bound, any may have entries
    log.clear()
    assert not log.saved_any("ten_a")
