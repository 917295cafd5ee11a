"""The control routes the dashboard reads and acts through: a batch's lines with their results,
paged by position; cancelling any tenant's batch; a webhook's deliveries; the change mark; and
the dashboard's files. (The page itself, in a browser: tests/test_dashboard_browser.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import KEY, Harness, assert_error, b64, chat_line, embed_line

from emulator.tenancy import open_tenant_id

TENANT = open_tenant_id(KEY)
DASHBOARD = {"X-Emulator-Dashboard": "1"}
FAULT_ON_ODD = "{faults: [{match: {custom_id: 'odd-*'}, error: {code: BACKEND_ERROR}}]}"


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def lines_url(batch_id: str, tenant: str = TENANT) -> str:
    return f"/_emulator/tenants/{tenant}/batches/{batch_id}/lines"


async def _submit(emu: Harness, lines: list[Any], scenario: str | None = None) -> dict[str, Any]:
    headers = {"X-Emulator-Scenario": scenario} if scenario else {}
    resp = await emu.client.post(
        "/v1/inference/batch", json={"input_file_base64": b64(lines)}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


async def test_lines_pages_by_position_with_each_result(emu: Harness) -> None:
    ids = [f"{'odd' if i % 2 else 'even'}-{i}" for i in range(250)]
    batch = await _submit(emu, [chat_line(c) for c in ids], FAULT_ON_ODD)
    await emu.settle()
    first = ok(await emu.client.get(lines_url(batch["id"])))
    assert (first["total_count"], first["offset"], first["limit"]) == (250, 0, 100)
    assert [x["custom_id"] for x in first["items"]] == ids[:100]
    assert first["next_offset"] == 100
    even, odd = first["items"][:2]
    assert (even["index"], even["line"], even["status"], even["url"]) == (
        0,
        1,
        "ok",
        "/v1/inference/chat",
    )
    assert even["body"]["messages"][0]["content"] == "Summarize: ..."
    assert even["response"]["object"] == "chat.completion" and "error" not in even
    assert odd["status"] == "error" and odd["error"]["code"] == "BACKEND_ERROR"
    last = ok(await emu.client.get(lines_url(batch["id"]), params={"offset": 200}))
    assert [x["index"] for x in last["items"]] == list(range(200, 250))
    assert last["next_offset"] is None
    # what the page shows is what the results file says, line for line
    results = await emu.results(batch["id"])
    middle = ok(await emu.client.get(lines_url(batch["id"]), params={"offset": 100}))
    shown = first["items"] + middle["items"] + last["items"]
    assert [(x["custom_id"], x["status"]) for x in shown] == [
        (r["custom_id"], r["status"]) for r in results
    ]


async def test_lines_filter_error_records_results_and_pending(emu: Harness) -> None:
    ids = ["even-0", "odd-1", "even-2", "odd-3"]
    done = await _submit(emu, [chat_line(c) for c in ids], FAULT_ON_ODD)
    await emu.settle()
    url = lines_url(done["id"])
    errors = ok(await emu.client.get(url, params={"status": "error", "limit": 1}))
    assert [x["custom_id"] for x in errors["items"]] == ["odd-1"] and errors["next_offset"] == 2
    more = ok(await emu.client.get(url, params={"status": "error", "offset": 2}))
    assert [x["custom_id"] for x in more["items"]] == ["odd-3"] and more["next_offset"] is None
    oks = ok(await emu.client.get(url, params={"status": "ok"}))
    assert [x["custom_id"] for x in oks["items"]] == ["even-0", "even-2"]
    slow = await _submit(emu, [chat_line(c) for c in ids], "slow-processing")
    await emu.advance(30 * 60 + 10 * 60)  # starts after 30 min; one request per 10 min
    pending = ok(await emu.client.get(lines_url(slow["id"]), params={"status": "pending"}))
    assert [x["custom_id"] for x in pending["items"]] == ids[1:]
    assert all("response" not in x and "error" not in x for x in pending["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"status": "done"}, "status"),
        ({"cursor": "x"}, "cursor"),
    ],
)
async def test_lines_query_is_strict(emu: Harness, params: dict[str, str], field: str) -> None:
    batch = await _submit(emu, [chat_line("a")])
    error = assert_error(
        await emu.client.get(lines_url(batch["id"]), params=params), 422, "VALIDATION_ERROR"
    )
    assert [d["field"] for d in error["details"]] == [field]


async def test_lines_of_a_batch_of_another_tenant_are_not_found(emu: Harness) -> None:
    batch = await _submit(emu, [chat_line("a")])
    other = open_tenant_id("sgk_other_" + "o" * 32)
    resp = await emu.client.get(lines_url(batch["id"], other))
    assert_error(resp, 404, "BATCH_NOT_FOUND")
    by_key = await emu.client.get(lines_url(batch["id"], KEY))  # a key names its tenant
    assert ok(by_key)["batch_id"] == batch["id"]


#: a batch whose lines all wait an hour, a thousand at a time: parsed at once, run slowly
HOURLY_THOUSAND = "{processing: {latency: 1h, concurrency: 1000}}"


async def test_a_page_of_a_50000_line_batch_costs_the_same_anywhere(emu: Harness) -> None:
    """A page is one indexed range read: SQLite runs as many steps for the last page of a
    50,000-line batch as for the first (counted by its progress handler, not timed)."""
    lines = [embed_line(f"r{i}", ["x"]) for i in range(50_000)]
    batch = await _submit(emu, lines, HOURLY_THOUSAND)
    await emu.advance(3600)  # the first thousand are done, the rest pending
    url = lines_url(batch["id"])
    steps: list[int] = []
    db = emu.core.store.db  # the in-memory database's one connection
    await db.set_progress_handler(lambda: steps.append(1), 100)  # a call every 100 VM steps
    try:
        cost = {}
        for offset, status in ((0, "ok"), (25_000, "pending"), (49_900, "pending")):
            steps.clear()
            page = ok(await emu.client.get(url, params={"offset": offset, "limit": 100}))
            cost[offset] = len(steps)
            assert [x["index"] for x in page["items"]] == list(range(offset, offset + 100))
            assert {x["status"] for x in page["items"]} == {status}
    finally:
        await db.set_progress_handler(None, 100)
    # a scan to the offset would take ~49,900 rows' steps more than the first page's
    assert max(cost.values()) <= 2 * min(cost.values()) + 50, cost


async def test_cancel_any_tenants_batch(emu: Harness) -> None:
    batch = await _submit(emu, [chat_line("a"), chat_line("b")], "slow-processing")
    url = f"/_emulator/tenants/{TENANT}/batches/{batch['id']}/cancel"
    error = assert_error(await emu.client.post(url, json={"now": True}), 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "now"
    cancelled = ok(await emu.client.post(url))
    assert cancelled["status"] == "cancelled"
    assert (await emu.batch(batch["id"]))["status"] == "cancelled"
    assert_error(await emu.client.post(url), 409, "BATCH_NOT_CANCELLABLE")


async def test_deliveries_of_any_tenants_webhook(emu: Harness) -> None:
    hook = ok(
        await emu.client.post(
            "/v1/webhooks",
            json={"url": "http://emulator.test/_emulator/sink/dash", "secret": "whsec_" + "s" * 32},
        )
    )
    await _submit(emu, [chat_line("a")])
    await emu.settle()
    url = f"/_emulator/tenants/{TENANT}/webhooks/{hook['id']}/deliveries"
    [delivery] = ok(await emu.client.get(url))["items"]
    assert (delivery["status"], delivery["event_type"], delivery["status_code"]) == (
        "success", "batch.completed", 200,
    )  # fmt: skip
    assert ok(await emu.client.get(url, params={"status": "failed"}))["items"] == []
    assert_error(await emu.client.get(url, params={"since": "x"}), 422, "VALIDATION_ERROR")


async def test_the_change_mark_moves_with_the_state_not_with_the_dashboards_reads(
    emu: Harness,
) -> None:
    async def mark() -> str:
        value: str = ok(await emu.client.get("/_emulator/changes", headers=DASHBOARD))["mark"]
        return value

    before = await mark()
    for path in ("/_emulator/state", "/_emulator/journal", "/_emulator/verdict", "/_emulator/ui"):
        assert (await emu.client.get(path, headers=DASHBOARD)).status_code == 200
    assert await mark() == before
    assert emu.core.journal.entries() == []  # none of those is journaled
    await _submit(emu, [chat_line("a")])
    after_submit = await mark()
    assert after_submit != before
    await emu.settle()
    assert await mark() != after_submit
    # without the header, a read is a request like any other: journaled, and it moves the mark
    settled = await mark()
    await emu.client.get("/_emulator/state")
    assert await mark() != settled
    assert [e["path"] for e in emu.core.journal.entries()][-1] == "/_emulator/state"


async def test_the_dashboards_actions_are_journaled(emu: Harness) -> None:
    await emu.client.post("/_emulator/clock/advance", json={"seconds": 1}, headers=DASHBOARD)
    assert [e["path"] for e in emu.core.journal.entries()] == ["/_emulator/clock/advance"]


async def test_the_dashboards_files_are_served_with_a_strict_policy(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        page = await anon.get("/_emulator/ui")
        script = await anon.get("/_emulator/ui/app.js")
        style = await anon.get("/_emulator/ui/app.css")
        missing = await anon.get("/_emulator/ui/secrets.txt")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/_emulator/ui/app.js"' in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert_error(missing, 404, "NOT_FOUND")
    # the script never hands data to the HTML parser
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text


async def test_the_dashboards_files_need_no_token_but_its_data_does(make_emu: Any) -> None:
    h = await make_emu(admin_token="t0ken")
    async with h.client_for(None) as anon:
        assert (await anon.get("/_emulator/ui")).status_code == 200
        assert_error(await anon.get("/_emulator/changes"), 401, "AUTH_TOKEN_INVALID")
        headers = {"X-Emulator-Admin-Token": "t0ken", **DASHBOARD}
        assert (
            ok(await anon.get("/_emulator/changes", headers=headers))["clock"]["mode"] == "frozen"
        )
