"""Webhooks: the management API, events and their signatures, delivery on the emulator clock
(retries, permanent failure, auto-disable), the deliveries listing and the built-in sink.

In-process (the harness delivers to its own sink through the ASGI transport), on a frozen clock:
nothing waits on real time, the clock is moved instead."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import KEY, OTHER_KEY, START, Harness, assert_error, chat_line
from webhook_helpers import (
    SECRET,
    SINK,
    deliveries,
    events_of,
    expected_signature,
    register,
    sink_items,
)

from emulator.clock import Clock
from emulator.tenancy import open_tenant_id
from emulator.webhooks import sink

MakeEmu = Callable[..., Awaitable[Harness]]
T0 = START.timestamp()
HOOKS = "/v1/webhooks"
TEST = "webhook.test"
ENVELOPE = {"event_type", "event_id", "source", "tenant_id", "partner_id", "payload", "timestamp"}


# --- management -----------------------------------------------------------------------------


async def test_create_get_list_update_delete(emu: Harness) -> None:
    created = await register(emu, SINK + "a", events=["batch.completed"], max_retries=3)
    assert created["id"].startswith("wh_")
    assert created == {
        "id": created["id"], "object": "webhook", "url": SINK + "a",
        "events": ["batch.completed"], "status": "active", "max_retries": 3,
        "consecutive_failures": 0, "disabled_at": None,
        "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
    }  # fmt: skip
    got = await emu.client.get(f"{HOOKS}/{created['id']}")
    assert got.json()["data"] == created

    await emu.advance(60)
    put = await emu.client.put(
        f"{HOOKS}/{created['id']}",
        json={"url": SINK + "b", "events": ["batch.failed"], "status": "inactive", "secret": "x"},
    )
    assert put.status_code == 200, put.text
    updated = put.json()["data"]
    assert (updated["url"], updated["events"], updated["status"]) == (
        SINK + "b", ["batch.failed"], "inactive",
    )  # fmt: skip
    assert updated["max_retries"] == 3  # what the update did not name stays
    assert updated["updated_at"] == "2026-01-01T00:01:00.000Z"

    deleted = await emu.client.delete(f"{HOOKS}/{created['id']}")
    assert deleted.json()["data"] == {"id": created["id"], "object": "webhook", "deleted": True}
    assert_error(await emu.client.get(f"{HOOKS}/{created['id']}"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(await emu.client.delete(f"{HOOKS}/{created['id']}"), 404, "WEBHOOK_NOT_FOUND")


async def test_defaults_are_the_batch_events_and_five_retries(emu: Harness) -> None:
    created = await register(emu, "http://127.0.0.1:9/hook")
    assert created["events"] == ["batch.completed", "batch.failed", "batch.cancelled"]
    assert created["max_retries"] == 5
    assert created["status"] == "active"


async def test_list_pages_newest_first(emu: Harness) -> None:
    ids = [(await register(emu, SINK + str(i)))["id"] for i in range(3)]
    first = (await emu.client.get(HOOKS, params={"limit": 2})).json()
    assert [w["id"] for w in first["data"]["items"]] == ids[:0:-1]
    assert first["pagination"]["has_more"] is True
    cursor = first["pagination"]["next_cursor"]
    second = (await emu.client.get(HOOKS, params={"limit": 2, "cursor": cursor})).json()
    assert [w["id"] for w in second["data"]["items"]] == ids[:1]
    assert second["pagination"] == {"has_more": False, "next_cursor": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://host/x"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "https:///path-only"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 12}, "url"),
        ({"url": "http://host:port/"}, "url"),
        ({"secret": ""}, "secret"),
        ({"secret": None}, "secret"),
        ({"events": []}, "events"),
        ({"events": ["batch.completed", "batch.exploded"]}, "events[1]"),
        ({"status": "paused"}, "status"),
        ({"max_retries": 11}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_field_is_a_422_naming_it(
    emu: Harness, body: dict[str, Any], field: str
) -> None:
    full = {"url": "https://example.test/hook", "secret": SECRET, **body}
    error = assert_error(await emu.client.post(HOOKS, json=full), 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == field


async def test_a_missing_url_or_secret_is_a_422(emu: Harness) -> None:
    for body, field in (({"secret": SECRET}, "url"), ({"url": SINK + "a"}, "secret")):
        error = assert_error(await emu.client.post(HOOKS, json=body), 422, "VALIDATION_ERROR")
        assert error["details"][0]["field"] == field


async def test_update_checks_its_fields_too(emu: Harness) -> None:
    hook = await register(emu, SINK + "a")
    resp = await emu.client.put(f"{HOOKS}/{hook['id']}", json={"url": "mailto:me@example.test"})
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == "url"


# --- auth and tenancy -------------------------------------------------------------------------


async def test_auth_is_required(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        assert_error(await anon.get(HOOKS), 401, "AUTH_TOKEN_MISSING")


async def test_webhooks_need_the_manage_permission(tmp_path: Path, make_emu: MakeEmu) -> None:
    user, admin = "sgk_" + "u" * 32, "sgk_" + "a" * 32
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "tenants:\n  - id: tenant_acme\n    keys:\n"
        f"      - {{key: {user}, role: tenant_user}}\n"
        f"      - {{key: {admin}, role: tenant_admin}}\n"
    )
    h = await make_emu(tenants=tenants)
    async with h.client_for(user) as client:
        error = assert_error(await client.get(HOOKS), 403, "AUTHZ_PERMISSION_DENIED")
        assert "webhooks:manage" in error["message"]
    async with h.client_for(admin) as client:
        assert (await client.get(HOOKS)).status_code == 200


async def test_another_tenants_webhook_does_not_exist(emu: Harness) -> None:
    hook = await register(emu, SINK + "a")
    path = f"{HOOKS}/{hook['id']}"
    async with emu.client_for(OTHER_KEY) as other:
        assert_error(await other.get(path), 404, "WEBHOOK_NOT_FOUND")
        assert_error(await other.put(path, json={"status": "inactive"}), 404, "WEBHOOK_NOT_FOUND")
        assert_error(await other.delete(path), 404, "WEBHOOK_NOT_FOUND")
        assert_error(await other.post(f"{path}/test"), 404, "WEBHOOK_NOT_FOUND")
        assert_error(await other.get(f"{path}/deliveries"), 404, "WEBHOOK_NOT_FOUND")
        assert (await other.get(HOOKS)).json()["data"]["items"] == []
    assert (await emu.client.get(path)).status_code == 200


# --- the secret is write-only -------------------------------------------------------------------


async def test_the_secret_is_never_shown(emu: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "whsec_never-show-me-" + "9" * 24
    created = await emu.client.post(HOOKS, json={"url": SINK + "s?status=500", "secret": secret})
    hook = created.json()["data"]
    await emu.submit([chat_line("r1")])
    await emu.settle()
    await emu.advance(7200)  # every retry fails, and is logged nowhere with the secret
    seen = [
        created.text,
        (await emu.client.get(HOOKS)).text,
        (await emu.client.get(f"{HOOKS}/{hook['id']}")).text,
        (await emu.client.put(f"{HOOKS}/{hook['id']}", json={"max_retries": 2})).text,
        (await emu.client.get(f"{HOOKS}/{hook['id']}/deliveries")).text,
        (await emu.client.post(f"{HOOKS}/{hook['id']}/test")).text,
        (await emu.client.get("/_emulator/state")).text,
        (await emu.client.get("/_emulator/journal")).text,
        (await emu.client.get("/_emulator/sink/s")).text,
        caplog.text,
        repr(await emu.core.store.all_webhooks()),
    ]
    assert "webhooks" in orjson.loads(seen[6])["data"]
    for text in seen:
        assert secret not in text


# --- events ----------------------------------------------------------------------------------


async def test_a_completed_batch_is_one_signed_event(emu: Harness) -> None:
    hook = await register(emu, SINK + "done")
    batch = await emu.submit([chat_line("r1"), chat_line("r2")], metadata={"project": "x"})
    await emu.settle()
    [item] = await sink_items(emu, "done")
    raw, headers = item["body"].encode(), item["headers"]
    assert headers["x-scaigrid-signature"] == expected_signature(SECRET, raw)
    assert headers["x-scaigrid-timestamp"] == str(int(T0))
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("ScaiGrid-Webhook/")
    event = orjson.loads(raw)
    assert set(event) == ENVELOPE
    assert headers["x-scaigrid-event-id"] == event["event_id"]
    assert headers["x-scaigrid-event-type"] == event["event_type"] == "batch.completed"
    assert event["event_id"].startswith("evt_")
    assert event["tenant_id"] == open_tenant_id(KEY)
    assert event["timestamp"] == "2026-01-01T00:00:00.000Z"
    payload = event["payload"]
    assert (payload["batch_id"], payload["status"]) == (batch["id"], "completed")
    counts = (payload["total_count"], payload["completed_count"], payload["failed_count"])
    assert counts == (2, 2, 0)
    assert payload["metadata"] == {"project": "x"}
    async with emu.client_for(None) as anon:  # the results link in the event works
        results = await anon.get(payload["results_url"])
    assert [orjson.loads(line)["custom_id"] for line in results.text.splitlines()] == ["r1", "r2"]

    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["status_code"], d["error_message"]) == (
        "success", 1, 200, None,
    )  # fmt: skip
    assert (d["event_id"], d["event_type"], d["webhook_id"]) == (
        event["event_id"], "batch.completed", hook["id"],
    )  # fmt: skip


async def test_failed_and_cancelled_batches_have_their_events(emu: Harness) -> None:
    await register(emu, SINK + "all")
    await emu.client.put(
        f"/_emulator/tenants/{open_tenant_id(KEY)}/scenario", json={"name": "slow-processing"}
    )
    slow = await emu.submit([chat_line("r1")])
    await emu.client.post(f"/v1/inference/batch/{slow['id']}/cancel")
    bad = await emu.client.post(
        "/v1/inference/batch",
        json={"input_file_base64": "bm90IGpzb24K"},  # "not json"
    )
    await emu.advance(3600)
    events = events_of(await sink_items(emu, "all"))
    by_type = {e["event_type"]: e["payload"] for e in events}
    assert by_type["batch.cancelled"]["batch_id"] == slow["id"]
    assert by_type["batch.cancelled"]["status"] == "cancelled"
    assert by_type["batch.failed"]["batch_id"] == bad.json()["data"]["id"]
    assert by_type["batch.failed"]["error"]["code"] == "INPUT_PARSE_ERROR"
    assert by_type["batch.failed"]["results_url"] is None
    assert len(events) == 2


async def test_only_subscribed_active_webhooks_of_the_tenant_hear(emu: Harness) -> None:
    await register(emu, SINK + "completed", events=["batch.completed"])
    await register(emu, SINK + "failed", events=["batch.failed"])
    await register(emu, SINK + "off", status="inactive")
    async with emu.client_for(OTHER_KEY) as other:
        resp = await other.post(HOOKS, json={"url": SINK + "other", "secret": SECRET})
        assert resp.status_code == 200
    await emu.submit([chat_line("r1")])
    await emu.settle()
    assert len(await sink_items(emu, "completed")) == 1
    for quiet in ("failed", "off", "other"):
        assert await sink_items(emu, quiet) == []


async def test_events_of_one_webhook_arrive_in_the_order_batches_finished(emu: Harness) -> None:
    await register(emu, SINK + "order")
    ids = [(await emu.submit([chat_line(f"r{i}")]))["id"] for i in range(5)]
    await emu.settle()
    assert [e["payload"]["batch_id"] for e in events_of(await sink_items(emu, "order"))] == ids


async def test_the_test_route_sends_one_synthetic_event_now(emu: Harness) -> None:
    hook = await register(emu, SINK + "t")
    resp = await emu.client.post(f"{HOOKS}/{hook['id']}/test")
    data = resp.json()["data"]
    assert set(data) == {"delivery_id", "status_code", "duration_ms", "error"}
    assert (data["status_code"], data["error"]) == (200, None)
    [item] = await sink_items(emu, "t")
    event = orjson.loads(item["body"])
    assert event["event_type"] == "webhook.test"
    assert event["payload"]["webhook_id"] == hook["id"]
    assert item["headers"]["x-scaigrid-signature"] == expected_signature(
        SECRET, item["body"].encode()
    )
    [d] = await deliveries(emu, hook["id"])
    assert (d["id"], d["status"], d["event_type"]) == (data["delivery_id"], "success", TEST)


async def test_a_failing_test_says_why_and_is_not_retried(emu: Harness) -> None:
    hook = await register(emu, SINK + "t?status=503")
    data = (await emu.client.post(f"{HOOKS}/{hook['id']}/test")).json()["data"]
    assert data["status_code"] == 503
    assert "503" in data["error"]
    await emu.advance(7200)
    assert len(await sink_items(emu, "t")) == 1
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["next_attempt_at"]) == ("failed", 1, None)


# --- retries on the emulator clock -----------------------------------------------------------


async def test_retries_follow_the_schedule_as_the_clock_moves(emu: Harness) -> None:
    """The sink fails the first 3 posts: attempts at 0 s, 30 s, 2 min fail, 10 min succeeds."""
    hook = await register(emu, SINK + "r?status=500&count=3")
    await emu.submit([chat_line("r1")])
    await emu.settle()
    seen = [len(await sink_items(emu, "r"))]
    for step in (29, 1, 89, 1, 479, 1, 3600):  # to 29 s, 30 s, 119 s, 2 min, 599 s, 10 min, +1 h
        await emu.advance(step)
        seen.append(len(await sink_items(emu, "r")))
    assert seen == [1, 1, 2, 2, 3, 3, 4, 4]
    items = await sink_items(emu, "r")
    assert [i["status"] for i in items] == [500, 500, 500, 200]
    times = [i["received_at"][11:19] for i in items]
    assert times == ["00:00:00", "00:00:30", "00:02:00", "00:10:00"]
    assert len({i["headers"]["x-scaigrid-event-id"] for i in items}) == 1
    assert [i["headers"]["x-scaigrid-timestamp"] for i in items] == [
        str(int(T0 + s)) for s in (0, 30, 120, 600)
    ]
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["status_code"], d["next_attempt_at"]) == (
        "success", 4, 200, None,
    )  # fmt: skip


async def test_advancing_two_hours_sends_every_due_retry_in_order(emu: Harness) -> None:
    hook = await register(emu, SINK + "jump?status=502&count=5")
    await emu.submit([chat_line("r1")])
    await emu.settle()
    [pending] = await deliveries(emu, hook["id"])
    assert (pending["status"], pending["attempts"], pending["status_code"]) == ("pending", 1, 502)
    assert pending["next_attempt_at"] == "2026-01-01T00:00:30.000Z"
    await emu.advance(7200)
    items = await sink_items(emu, "jump")
    assert [i["status"] for i in items] == [502] * 5 + [200]
    assert [i["headers"]["x-scaigrid-delivery-id"] for i in items] == [pending["id"]] * 6
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"]) == ("success", 6)


async def test_after_max_retries_a_delivery_fails_for_good(emu: Harness) -> None:
    hook = await register(emu, SINK + "down?status=500", max_retries=2)
    await emu.submit([chat_line("r1")])
    await emu.advance(7200)
    await emu.advance(86400)
    assert len(await sink_items(emu, "down")) == 3  # the first attempt and two retries
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["status_code"], d["next_attempt_at"]) == (
        "failed", 3, 500, None,
    )  # fmt: skip
    assert d["error_message"] == "receiver answered 500"


async def test_no_retry_at_all_with_max_retries_zero(emu: Harness) -> None:
    hook = await register(emu, SINK + "once?status=500", max_retries=0)
    await emu.submit([chat_line("r1")])
    await emu.advance(7200)
    assert len(await sink_items(emu, "once")) == 1
    assert (await deliveries(emu, hook["id"]))[0]["status"] == "failed"


async def test_an_unreachable_receiver_is_a_failed_attempt_without_status(emu: Harness) -> None:
    hook = await register(emu, "http://127.0.0.1:9/nothing-listens")
    async with httpx.AsyncClient(trust_env=False) as real:  # a real socket, refused
        emu.core.sender.use(real)
        await emu.submit([chat_line("r1")])
        await emu.settle()
    [d] = await deliveries(emu, hook["id"])
    assert (d["status"], d["attempts"], d["status_code"]) == ("pending", 1, None)
    assert d["error_message"].startswith("ConnectError")


async def test_fifty_failures_in_a_row_disable_the_webhook(emu: Harness) -> None:
    broken = await register(emu, SINK + "broken?status=500", max_retries=9)
    watcher = await register(emu, SINK + "watch", events=["webhook.auto_disabled"])
    for i in range(6):  # 10 attempts each: the 50th failure comes during the fifth
        await emu.submit([chat_line(f"r{i}")])
    await emu.settle()
    await emu.advance(86400)
    assert len(await sink_items(emu, "broken")) == 50
    hook = (await emu.client.get(f"{HOOKS}/{broken['id']}")).json()["data"]
    assert (hook["status"], hook["consecutive_failures"]) == ("inactive", 50)
    assert hook["disabled_at"] is not None
    [item] = await sink_items(emu, "watch")
    event = orjson.loads(item["body"])
    assert event["event_type"] == "webhook.auto_disabled"
    assert event["payload"]["webhook_id"] == broken["id"]
    assert event["payload"]["consecutive_failures"] == 50
    assert watcher["id"] != broken["id"]

    # inactive receives nothing (no delivery is even made); back to active, it starts afresh
    # and gets the deliveries that were still pending when it was disabled
    later = await emu.submit([chat_line("later")])
    await emu.advance(86400)
    assert len(await sink_items(emu, "broken")) == 50
    held = await deliveries(emu, broken["id"], status="pending")
    assert held and all(d["attempts"] < 10 for d in held)
    resp = await emu.client.put(
        f"{HOOKS}/{broken['id']}", json={"status": "active", "url": SINK + "fixed"}
    )
    assert resp.json()["data"]["consecutive_failures"] == 0
    await emu.settle()
    fixed = events_of(await sink_items(emu, "fixed"))
    assert sorted(e["event_id"] for e in fixed) == sorted(d["event_id"] for d in held)
    assert later["id"] not in {e["payload"]["batch_id"] for e in fixed}


async def test_a_success_resets_the_run_of_failures(emu: Harness) -> None:
    hook = await register(emu, SINK + "flaky?status=500&count=3")
    await emu.submit([chat_line("r1")])
    await emu.settle()
    await emu.advance(120)
    got = (await emu.client.get(f"{HOOKS}/{hook['id']}")).json()["data"]
    assert got["consecutive_failures"] == 3
    await emu.advance(480)  # the fourth attempt, at 10 min, succeeds
    got = (await emu.client.get(f"{HOOKS}/{hook['id']}")).json()["data"]
    assert got["consecutive_failures"] == 0


# --- deliveries listing ----------------------------------------------------------------------


async def test_deliveries_filter_by_status_since_and_limit(emu: Harness) -> None:
    hook = await register(emu, SINK + "mix?status=500&count=1", max_retries=0)
    await emu.submit([chat_line("a")])  # the sink fails this one: failed for good
    await emu.settle()
    await emu.advance(60)
    await emu.submit([chat_line("b")])
    await emu.settle()
    await emu.client.put(f"{HOOKS}/{hook['id']}", json={"url": SINK + "mix?status=500"})
    await emu.client.put(f"{HOOKS}/{hook['id']}", json={"max_retries": 5})
    await emu.advance(60)
    await emu.submit([chat_line("c")])  # fails once, its retry pending
    await emu.settle()

    every = await deliveries(emu, hook["id"])
    assert [d["status"] for d in every] == ["pending", "success", "failed"]  # newest first
    for status in ("pending", "success", "failed"):
        assert [d["status"] for d in await deliveries(emu, hook["id"], status=status)] == [status]
    since = await deliveries(emu, hook["id"], since="2026-01-01T00:01:00Z")
    assert [d["status"] for d in since] == ["pending", "success"]
    page = (await emu.client.get(f"{HOOKS}/{hook['id']}/deliveries", params={"limit": 2})).json()
    assert len(page["data"]["items"]) == 2 and page["pagination"]["has_more"] is True
    rest = await deliveries(emu, hook["id"], cursor=page["pagination"]["next_cursor"])
    assert [d["status"] for d in rest] == ["failed"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "done"}, "status"), ({"since": "yesterday"}, "since"), ({"limit": 0}, "limit")],
)
async def test_bad_delivery_filters_are_422(
    emu: Harness, params: dict[str, Any], field: str
) -> None:
    hook = await register(emu, SINK + "x")
    resp = await emu.client.get(f"{HOOKS}/{hook['id']}/deliveries", params=params)
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == field


async def test_deleting_a_webhook_drops_its_in_flight_deliveries(emu: Harness) -> None:
    hook = await register(emu, SINK + "gone?status=500")
    await emu.submit([chat_line("r1")])
    await emu.settle()
    assert len(await sink_items(emu, "gone")) == 1  # the first attempt failed; a retry is due
    await emu.client.delete(f"{HOOKS}/{hook['id']}")
    await emu.advance(7200)
    assert len(await sink_items(emu, "gone")) == 1
    assert await emu.core.store.next_delivery_due() is None


# --- the sink --------------------------------------------------------------------------------


async def test_the_sink_records_raw_posts_and_answers_as_asked(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        answers = [
            (await anon.post("/_emulator/sink/s?status=418&count=2", content=b"one")).status_code
            for _ in range(3)
        ]
        plain = await anon.post("/_emulator/sink/s", content="{ not json", headers={"x-a": "b"})
    assert answers == [418, 418, 200]
    assert plain.status_code == 200
    items = await sink_items(emu, "s")
    assert [(i["body"], i["status"]) for i in items] == [
        ("one", 418), ("one", 418), ("one", 200), ("{ not json", 200),
    ]  # fmt: skip
    assert set(items[0]) == {"received_at", "headers", "body", "status"}
    assert items[3]["headers"]["x-a"] == "b"
    assert await sink_items(emu, "never-posted") == []


async def test_sinks_keep_a_byte_budget_across_all_of_them(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posting needs no token: however many sinks a caller names, what they keep is bounded,
    the oldest posts anywhere going first (and each sink keeps its last CAPACITY)."""
    monkeypatch.setattr(sink, "BUDGET", 100)
    monkeypatch.setattr(sink, "CAPACITY", 3)
    async with emu.client_for(None) as anon:
        for i in range(6):  # 40 bytes each, to sinks a, b, a, b, ...
            await anon.post(f"/_emulator/sink/{'ab'[i % 2]}", content=f"{i:040d}".encode())
        assert [x["body"][-1] for x in await sink_items(emu, "a")] == ["4"]
        assert [x["body"][-1] for x in await sink_items(emu, "b")] == ["5"]
        await anon.post("/_emulator/sink/big", content=b"x" * 500)  # over the budget alone
        assert await sink_items(emu, "a") == await sink_items(emu, "b") == []
        assert len(await sink_items(emu, "big")) == 1  # the newest post always stays
        for i in range(10):  # a sink's capacity, the budget aside
            await anon.post("/_emulator/sink/c", content=f"{i}".encode())
        assert [x["body"] for x in await sink_items(emu, "c")] == ["7", "8", "9"]
        assert await sink_items(emu, "big") == []  # the oldest anywhere went for c's posts


def test_a_full_sink_posted_to_for_ever_holds_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts a full sink drops leave no trace behind: the arrival order is compacted."""
    monkeypatch.setattr(sink, "CAPACITY", 10)
    sinks = sink.Sinks(Clock(mode="frozen"))
    for _ in range(20_000):
        sinks.receive("s", {}, b"x", None, None)
    assert len(sinks.items("s")) == 10
    assert len(sinks._arrivals) <= 2 * 10 + 1024 + 1


async def test_a_bad_sink_query_is_a_422(emu: Harness) -> None:
    resp = await emu.client.post("/_emulator/sink/s?status=99", content=b"x")
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == "status"


async def test_reset_clears_sinks_and_webhooks(emu: Harness) -> None:
    hook = await register(emu, SINK + "r")
    await emu.client.post(f"{HOOKS}/{hook['id']}/test")
    assert (await emu.client.post("/_emulator/reset")).status_code == 200
    assert await sink_items(emu, "r") == []
    assert (await emu.client.get(HOOKS)).json()["data"]["items"] == []


async def test_reset_of_one_tenant_keeps_the_others_webhooks(emu: Harness) -> None:
    await register(emu, SINK + "mine")
    async with emu.client_for(OTHER_KEY) as other:
        await other.post(HOOKS, json={"url": SINK + "theirs", "secret": SECRET})
        await emu.client.post("/_emulator/reset", json={"api_key": KEY})
        assert len((await other.get(HOOKS)).json()["data"]["items"]) == 1
    assert (await emu.client.get(HOOKS)).json()["data"]["items"] == []
