"""The control plane under /_emulator: reset, seed, scenarios, journal, state, the admin token, and
the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KEY, OTHER_KEY, Harness, assert_error, b64, chat_line

from emulator.api.routes import ROUTES
from emulator.scenario.registry import bundled_files
from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
TENANT = open_tenant_id(KEY)
OTHER = open_tenant_id(OTHER_KEY)
BATCH = "/v1/inference/batch"
CHAT_BODY = chat_line("live", "Tell me something")["body"]


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok", body
    return body["data"]


async def upload(client: httpx.AsyncClient, name: str = "in.jsonl") -> dict[str, Any]:
    files = {"file": (name, b'{"x": 1}\n', "application/jsonl")}
    data: dict[str, Any] = ok(await client.post("/v1/files", files=files))
    return data


async def populate(h: Harness, client: httpx.AsyncClient) -> tuple[str, str]:
    """A file and a finished batch for the client's tenant: (file id, batch id)."""
    f = await upload(client)
    batch = await h.submit([chat_line("a")], client=client)
    await h.settle()
    return f["id"], batch["id"]


async def listing(client: httpx.AsyncClient, path: str) -> list[str]:
    return [item["id"] for item in ok(await client.get(path))["items"]]


# --- health and reset ---------------------------------------------------------------------------


async def test_health_needs_nothing(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        data = ok(await anon.get("/_emulator/health"))
    assert data["status"] == "healthy" and data["version"] == emu.core.version


async def test_reset_all(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        mine = await populate(emu, emu.client)
        await populate(emu, other)
        assert ok(await emu.client.post("/_emulator/reset")) == {"reset": "all"}
        for client in (emu.client, other):
            assert await listing(client, "/v1/files") == []
            assert await listing(client, "/v1/inference/batch") == []
        assert_error(await emu.client.get(f"/v1/inference/batch/{mine[1]}"), 404, "BATCH_NOT_FOUND")
        assert_error(await emu.client.get(f"/v1/files/{mine[0]}"), 404, "FILE_NOT_FOUND")


@pytest.mark.parametrize("how", ["tenant_id", "api_key"])
async def test_reset_one_tenant_leaves_the_other(emu: Harness, how: str) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        await populate(emu, emu.client)
        theirs = await populate(emu, other)
        their_files = await listing(other, "/v1/files")
        assert len(their_files) == 2  # the upload and the batch's inline input
        await emu.client.put(f"/_emulator/tenants/{TENANT}/scenario", json={"name": "cancellation"})
        body = {"tenant_id": TENANT} if how == "tenant_id" else {"api_key": KEY}
        assert ok(await emu.client.post("/_emulator/reset", json=body)) == {"reset": TENANT}
        # the tenant's journal went with it
        journal = ok(await emu.client.get("/_emulator/journal", params={"tenant_id": TENANT}))
        assert journal["items"] == []
        journal = ok(await emu.client.get("/_emulator/journal", params={"tenant_id": OTHER}))
        assert journal["items"]
        assert await listing(emu.client, "/v1/files") == []
        assert await listing(emu.client, "/v1/inference/batch") == []
        assert await listing(other, "/v1/files") == their_files
        assert await listing(other, "/v1/inference/batch") == [theirs[1]]
        assert (await emu.batch(theirs[1], client=other))["status"] == "completed"
        # and so did its scenario
        scenarios = ok(await emu.client.get("/_emulator/scenarios"))
        assert TENANT not in scenarios["tenants"]


async def test_reset_of_a_tenant_clears_its_rate_limit_window(make_emu: MakeEmu) -> None:
    # Fails until emulator/core.py's Emulator.reset (line 159) gets an `else:` branch for a
    # tenant reset: `self.gate.forget(tenant_id)` and `self._live_calls.pop(tenant_id, None)`.
    # Today the gate and the live-call counts are cleared only by a full reset, so a tenant
    # reset leaves its rate-limit window, API-fault call counts and every-Nth live count behind.
    h = await make_emu(scenario="rate-limited")
    async with h.client_for(OTHER_KEY) as other:
        for _ in range(5):
            assert (await h.client.get("/v1/models")).status_code == 200
            assert (await other.get("/v1/models")).status_code == 200
        assert_error(await h.client.get("/v1/models"), 429, "RATE_LIMITED")
        ok(await h.client.post("/_emulator/reset", json={"tenant_id": TENANT}))
        assert (await h.client.get("/v1/models")).status_code == 200
        assert_error(await other.get("/v1/models"), 429, "RATE_LIMITED")


async def test_reset_by_api_key_in_configured_tenancy(make_emu: MakeEmu, tmp_path: Path) -> None:
    keys = ["sgk_acme_" + "a" * 32, "sgk_zeta_" + "z" * 32]
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n"
        f"  - id: acme\n    keys:\n      - key: {keys[0]}\n        role: tenant_admin\n"
        f"  - id: zeta\n    keys:\n      - key: {keys[1]}\n        role: tenant_admin\n",
        encoding="utf-8",
    )
    h = await make_emu(tenants=path)
    async with h.client_for(keys[0]) as acme, h.client_for(keys[1]) as zeta:
        await populate(h, acme)
        await populate(h, zeta)
        assert ok(await acme.post("/_emulator/reset", json={"api_key": keys[0]})) == {
            "reset": "acme"
        }
        assert await listing(acme, "/v1/files") == []
        assert len(await listing(zeta, "/v1/files")) == 2
        resp = await acme.post("/_emulator/reset", json={"api_key": "sgk_unknown_" + "u" * 32})
        assert_error(resp, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body", [{"tenant_id": 5}, {"api_key": "not-a-key"}, {"api_key": ["sgk_"]}]
)
async def test_reset_refuses_bad_bodies(emu: Harness, body: dict[str, Any]) -> None:
    await populate(emu, emu.client)
    assert_error(await emu.client.post("/_emulator/reset", json=body), 422, "VALIDATION_ERROR")
    assert len(await listing(emu.client, "/v1/files")) == 2


# --- reset with a clock: starting over at an instant, for some tenants -------------------------


async def submit_slow(client: httpx.AsyncClient) -> str:
    """A batch that stays pending for 30 minutes of emulator time: its id."""
    body = {"input_file_base64": b64([chat_line("a")])}
    headers = {"X-Emulator-Scenario": "slow-processing"}
    batch_id: str = ok(await client.post(BATCH, json=body, headers=headers))["id"]
    return batch_id


async def clock_now(h: Harness) -> str:
    now: str = ok(await h.client.get("/_emulator/clock"))["now"]
    return now


async def test_reset_with_a_clock_starts_tenants_over_at_that_instant(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        first = await emu.client.get("/v1/models")
        f1, b1 = await populate(emu, emu.client)
        await submit_slow(other)  # left pending
        ok(await emu.client.put("/_emulator/clock", json={"mode": "scaled", "scale": 2}))
        ok(await emu.client.post("/_emulator/clock/advance", json={"hours": 5}))
        body = {"tenant_ids": [TENANT, OTHER], "clock": "2026-01-01T00:00:00Z"}
        answer = ok(await emu.client.post("/_emulator/reset", json=body))
        assert answer == {
            "reset": [TENANT, OTHER],
            "clock": {"now": "2026-01-01T00:00:00.000Z", "mode": "frozen", "scale": 1.0},
        }
        # as a fresh server: the same ids, request ids included, at the same instants
        again = await emu.client.get("/v1/models")
        assert again.headers["x-request-id"] == first.headers["x-request-id"]
        assert await listing(other, "/v1/inference/batch") == []
        assert await populate(emu, emu.client) == (f1, b1)
        assert (await emu.batch(b1))["created_at"] == "2026-01-01T00:00:00.000Z"


async def test_putting_the_clock_back_under_another_tenants_work_is_refused(
    emu: Harness,
) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        mine = await populate(emu, emu.client)
        theirs = await submit_slow(other)
        await emu.advance(60)
        body = {"tenant_id": TENANT, "clock": "2026-01-01T00:00:00Z"}
        error = assert_error(await emu.client.post("/_emulator/reset", json=body), 409,
                             "CLOCK_IN_USE")  # fmt: skip
        assert OTHER in error["message"] and "1 batch(es) pending or processing" in error["message"]
        assert error["details"] == [
            {"field": "clock", "message": f"tenant {OTHER} has work in progress"}
        ]
        # nothing was done: the tenant's objects and the clock are where they were
        assert await listing(emu.client, "/v1/inference/batch") == [mine[1]]
        assert await clock_now(emu) == "2026-01-01T00:01:00.000Z"
        # once their batch is done, it goes
        await emu.advance(3600)
        assert (await emu.batch(theirs, client=other))["status"] == "completed"
        ok(await emu.client.post("/_emulator/reset", json=body))
        assert await clock_now(emu) == "2026-01-01T00:00:00.000Z"
        assert await listing(other, "/v1/inference/batch") == [theirs]


async def test_a_webhook_delivery_still_to_attempt_is_work_in_progress(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        hook = {"url": "http://emulator.test/_emulator/sink/down?status=503", "secret": "whsec_x"}
        ok(await other.post("/v1/webhooks", json=hook))
        await emu.submit([chat_line("a")], client=other)
        await emu.settle()  # the batch completes; its event's first post is answered 503
        body = {"tenant_ids": [TENANT], "clock": "2026-01-01T00:00:00Z"}
        error = assert_error(await emu.client.post("/_emulator/reset", json=body), 409,
                             "CLOCK_IN_USE")  # fmt: skip
        assert "0 batch(es) pending or processing, 1 webhook delivery(ies)" in error["message"]
        # a full reset leaves nobody's work behind: never refused
        answer = ok(await emu.client.post("/_emulator/reset", json={"clock": "2025-06-01"}))
        assert answer["reset"] == "all" and answer["clock"]["now"] == "2025-06-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"tenant_ids": TENANT}, "tenant_ids"), ({"tenant_ids": [TENANT, 5]}, "tenant_ids"),
     ({"tenant_ids": [TENANT], "tenant_id": TENANT}, "tenant_ids"),
     ({"clock": "yesterday"}, "clock"), ({"tenant_id": TENANT, "clock": 5}, "clock")],
)  # fmt: skip
async def test_reset_with_a_clock_refuses_bad_bodies_and_wipes_nothing(
    emu: Harness, body: dict[str, Any], field: str
) -> None:
    await populate(emu, emu.client)
    await emu.advance(60)
    error = assert_error(await emu.client.post("/_emulator/reset", json=body), 422,
                         "VALIDATION_ERROR")  # fmt: skip
    assert [d["field"] for d in error["details"]] == [field]
    assert len(await listing(emu.client, "/v1/files")) == 2
    assert await clock_now(emu) == "2026-01-01T00:01:00.000Z"


# --- strict bodies: every control route takes exactly the keys its table names -----------------


@pytest.mark.parametrize(
    "body",
    [{"tenantId": TENANT}, {"foo": 1}, {"tenant_id": None}, {"api_key": None},
     {"tenant_id": TENANT, "api_key": KEY}],
)  # fmt: skip
async def test_a_misspelled_reset_is_422_and_wipes_nothing(
    emu: Harness, body: dict[str, Any]
) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        await populate(emu, emu.client)
        await populate(emu, other)
        error = assert_error(await emu.client.post("/_emulator/reset", json=body), 422,
                             "VALIDATION_ERROR")  # fmt: skip
        named = next(iter(body)) if len(body) == 1 else "api_key"
        assert f"'{named}'" in error["message"]
        assert any(d["field"] == named for d in error["details"])
        assert len(await listing(emu.client, "/v1/files")) == 2
        assert len(await listing(other, "/v1/files")) == 2


@pytest.mark.parametrize("raw", [b"", b"{}"])
async def test_only_an_empty_reset_means_everyone(emu: Harness, raw: bytes) -> None:
    await populate(emu, emu.client)
    assert ok(await emu.client.post("/_emulator/reset", content=raw)) == {"reset": "all"}
    assert await listing(emu.client, "/v1/files") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/_emulator/clock/advance", {"days": 1}, "days"),
        ("POST", "/_emulator/clock/advance", {"seconds": "5"}, "seconds"),
        ("POST", "/_emulator/clock/advance", {"seconds": True}, "seconds"),
        ("POST", "/_emulator/clock/advance", {"hours": None}, "hours"),
        ("PUT", "/_emulator/clock", {"mdoe": "scaled"}, "mdoe"),
        ("PUT", "/_emulator/clock", {"scale": "2"}, "scale"),
        ("PUT", "/_emulator/clock", {"mode": None}, "mode"),
        ("PUT", "/_emulator/clock", {"start": 5}, "start"),
        ("PUT", "/_emulator/seed", {"seed": 1, "extra": 2}, "extra"),
        ("PUT", "/_emulator/seed", {"sede": 1}, "sede"),
        ("PUT", "/_emulator/scenario", {"nmae": "happy-path"}, "nmae"),
        ("PUT", "/_emulator/scenario", {"name": "happy-path", "yaml": "name: x"}, "yaml"),
        ("PUT", f"/_emulator/tenants/{TENANT}/scenario", {"name": 3}, "name"),
        ("PUT", f"/_emulator/tenants/{KEY}/scenario", {"scenario": "x"}, "scenario"),
    ],
)
async def test_every_control_body_is_checked_against_its_table(
    emu: Harness, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = ok(await emu.client.get("/_emulator/clock"))
    resp = await emu.client.request(method, path, json=body)
    error = assert_error(resp, 422, "VALIDATION_ERROR")
    assert f"'{field}'" in error["message"], error
    assert [d["field"] for d in error["details"]][0] == field
    assert ok(await emu.client.get("/_emulator/clock")) == before
    assert ok(await emu.client.get("/_emulator/seed")) == {"seed": 0}
    assert ok(await emu.client.get("/_emulator/scenarios"))["tenants"] == {}


@pytest.mark.parametrize("path", ["/_emulator/journal", "/_emulator/state"])
async def test_an_unknown_query_parameter_is_422(emu: Harness, path: str) -> None:
    error = assert_error(await emu.client.get(path, params={"tenant": TENANT}), 422,
                         "VALIDATION_ERROR")  # fmt: skip
    assert "'tenant'" in error["message"]


async def test_every_body_taking_control_route_has_a_table() -> None:
    from emulator.wire_control import CONTROL_BODIES

    cancel = "tenants/{tenant}/batches/{batch_id}/cancel"
    names = {"reset", "clock", "clock/advance", "seed", "scenario", cancel}
    assert set(CONTROL_BODIES) == names
    posts = {
        r.path
        for r in ROUTES
        if r.path.startswith("/_emulator") and not r.path.startswith("/_emulator/sink")
        and (r.methods or set()) & {"POST", "PUT"}
    }  # fmt: skip
    assert posts == {"/_emulator/reset", "/_emulator/clock", "/_emulator/clock/advance",
                     "/_emulator/seed", "/_emulator/scenario",
                     "/_emulator/tenants/{tenant}/scenario", f"/_emulator/{cancel}"}  # fmt: skip


# --- tenants named by key ------------------------------------------------------------------------


async def test_a_tenant_scenario_set_by_api_key_applies_to_its_tenant(emu: Harness) -> None:
    url = f"/_emulator/tenants/{KEY}/scenario"
    ok(await emu.client.put(url, json={"name": "rate-limited"}))
    assert list(ok(await emu.client.get("/_emulator/scenarios"))["tenants"]) == [TENANT]
    assert ok(await emu.client.get(url))["name"] == "rate-limited"
    assert ok(await emu.client.get(f"/_emulator/tenants/{TENANT}/scenario"))["name"] == (
        "rate-limited"
    )
    ok(await emu.client.delete(url))
    assert ok(await emu.client.get("/_emulator/scenarios"))["tenants"] == {}


async def test_a_key_resolves_to_its_tenant(emu: Harness) -> None:
    data = ok(await emu.client.get(f"/_emulator/tenants/{KEY}"))
    assert data["tenant_id"] == TENANT and data["resolved_from"] == "api_key"
    assert data["role"] == "tenant_admin"
    by_id = ok(await emu.client.get(f"/_emulator/tenants/{TENANT}"))
    assert by_id == {"tenant_id": TENANT, "partner_id": data["partner_id"],
                     "resolved_from": "tenant_id"}  # fmt: skip
    error = assert_error(await emu.client.get("/_emulator/tenants/sgk_short"), 422,
                         "VALIDATION_ERROR")  # fmt: skip
    assert "well-formed" in error["message"]


async def test_configured_tenancy_resolves_only_its_keys(make_emu: MakeEmu, tmp_path: Path) -> None:
    acme_key = "sgk_acme_" + "a" * 32
    path = tmp_path / "tenants.yaml"
    path.write_text(
        f"tenants:\n  - id: acme\n    partner_id: p1\n    keys:\n      - key: {acme_key}\n",
        encoding="utf-8",
    )
    h = await make_emu(tenants=path)
    data = ok(await h.client.get(f"/_emulator/tenants/{acme_key}"))
    assert (data["tenant_id"], data["partner_id"], data["role"]) == ("acme", "p1", "tenant_user")
    unknown = "sgk_nobody_" + "n" * 32
    error = assert_error(await h.client.get(f"/_emulator/tenants/{unknown}"), 422,
                         "VALIDATION_ERROR")  # fmt: skip
    assert "not a key of any configured tenant" in error["message"]
    resp = await h.client.put(f"/_emulator/tenants/{unknown}/scenario", json={"name": "happy-path"})
    assert_error(resp, 422, "VALIDATION_ERROR")
    assert_error(await h.client.get("/_emulator/tenants/zeta"), 422, "VALIDATION_ERROR")
    ok(await h.client.put(f"/_emulator/tenants/{acme_key}/scenario", json={"name": "rate-limited"}))
    assert set(ok(await h.client.get("/_emulator/scenarios"))["tenants"]) == {"acme"}


async def test_after_a_full_reset_ids_start_again(emu: Harness) -> None:
    first = await emu.client.get("/v1/models")
    f1, b1 = await populate(emu, emu.client)
    ok(await emu.client.post("/_emulator/reset"))
    again = await emu.client.get("/v1/models")
    f2, b2 = await populate(emu, emu.client)
    assert (f1, b1) == (f2, b2)
    assert first.headers["x-request-id"] == again.headers["x-request-id"]


# --- seed ---------------------------------------------------------------------------------------


async def test_seed_changes_generated_text_and_ids(emu: Harness) -> None:
    assert ok(await emu.client.get("/_emulator/seed")) == {"seed": 0}
    text0 = ok(await emu.client.post("/v1/inference/chat", json=CHAT_BODY))["choices"]
    batch0 = (await emu.submit([chat_line("a")]))["id"]
    ok(await emu.client.post("/_emulator/reset"))

    assert ok(await emu.client.put("/_emulator/seed", json={"seed": 5})) == {"seed": 5}
    assert ok(await emu.client.get("/_emulator/seed")) == {"seed": 5}
    text5 = ok(await emu.client.post("/v1/inference/chat", json=CHAT_BODY))["choices"]
    batch5 = (await emu.submit([chat_line("a")]))["id"]
    assert text5 != text0
    assert batch5 != batch0
    state = ok(await emu.client.get("/_emulator/state"))
    assert state["seed"] == 5

    ok(await emu.client.post("/_emulator/reset"))
    ok(await emu.client.put("/_emulator/seed", json={"seed": 0}))
    assert ok(await emu.client.post("/v1/inference/chat", json=CHAT_BODY))["choices"] == text0
    assert (await emu.submit([chat_line("a")]))["id"] == batch0


@pytest.mark.parametrize("body", [{"seed": "5"}, {"seed": True}, {"seed": 1.5}, {}])
async def test_seed_must_be_an_integer(emu: Harness, body: dict[str, Any]) -> None:
    assert_error(await emu.client.put("/_emulator/seed", json=body), 422, "VALIDATION_ERROR")
    assert ok(await emu.client.get("/_emulator/seed")) == {"seed": 0}


# --- scenarios ----------------------------------------------------------------------------------


async def test_scenarios_lists_bundled_global_and_tenant_ones(emu: Harness) -> None:
    await emu.client.put(f"/_emulator/tenants/{TENANT}/scenario", json={"name": "rate-limited"})
    await emu.client.put(
        f"/_emulator/tenants/{OTHER}/scenario", json={"yaml": "name: mine\ndescription: x\n"}
    )
    data = ok(await emu.client.get("/_emulator/scenarios"))
    assert [s["name"] for s in data["bundled"]] == list(bundled_files())
    assert all(s["description"] and s["source"].endswith(".yaml") for s in data["bundled"])
    assert data["global"]["name"] == "happy-path"
    assert data["tenants"][TENANT]["name"] == "rate-limited"
    assert data["tenants"][OTHER] == {"name": "mine", "description": "x", "source": "<inline>"}


async def test_get_and_put_the_global_scenario(emu: Harness, tmp_path: Path) -> None:
    current = ok(await emu.client.get("/_emulator/scenario"))
    assert current["name"] == "happy-path" and "happy-path" in current["yaml"]
    data = ok(await emu.client.put("/_emulator/scenario", json={"name": "cancellation"}))
    assert data["name"] == "cancellation" and "cancel_after: 5" in data["yaml"]
    assert ok(await emu.client.get("/_emulator/scenario"))["name"] == "cancellation"
    batch = await emu.submit([chat_line(f"r{i}") for i in range(7)])
    await emu.settle()
    assert (await emu.batch(batch["id"]))["status"] == "cancelled"

    yaml = "name: inline-one\nbatch:\n  fail_input: true\n"
    data = ok(await emu.client.put("/_emulator/scenario", json={"yaml": yaml}))
    assert data == {"name": "inline-one", "description": "", "source": "<inline>", "yaml": yaml}
    path = tmp_path / "from-file.yaml"
    path.write_text("description: from a file\n", encoding="utf-8")
    data = ok(await emu.client.put("/_emulator/scenario", json={"name": str(path)}))
    assert data["name"] == "from-file" and data["source"] == str(path)


async def test_a_scenario_file_is_read_again_when_named_again(emu: Harness, tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("description: first version\n", encoding="utf-8")
    data = ok(await emu.client.put("/_emulator/scenario", json={"name": str(path)}))
    assert data["description"] == "first version"
    path.write_text("description: second version\nbatch: {cancel_after: 1}\n", encoding="utf-8")
    data = ok(await emu.client.put("/_emulator/scenario", json={"name": str(path)}))
    assert data["description"] == "second version"
    batch = await emu.submit([chat_line("a"), chat_line("b")])
    await emu.settle()
    assert (await emu.batch(batch["id"]))["status"] == "cancelled"


async def test_a_tenant_scenario_can_be_read_and_dropped(emu: Harness) -> None:
    url = f"/_emulator/tenants/{TENANT}/scenario"
    assert ok(await emu.client.get(url))["name"] == "happy-path"  # the global one
    ok(await emu.client.put(url, json={"name": "flaky-backend"}))
    assert ok(await emu.client.get(url))["name"] == "flaky-backend"
    assert ok(await emu.client.delete(url))["name"] == "happy-path"
    assert ok(await emu.client.get(url))["name"] == "happy-path"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"yaml": "name: x\nprocessing:\n  concurrency: 0\n"}, "processing.concurrency (line 3)"),
        (
            {"yaml": "faults:\n  - error: {code: X, status: 200}\n"},
            "faults[0].error.status (line 2)",
        ),
        ({"yaml": "name: [broken\n"}, "(line 2): not valid YAML"),
        ({"yaml": ""}, "the scenario is empty"),
        ({"name": "no-such-scenario"}, "unknown scenario 'no-such-scenario'"),
        ({"name": 5}, "name"),
        ({}, "name"),
    ],
)
async def test_bad_scenarios_are_422(emu: Harness, body: dict[str, Any], fragment: str) -> None:
    for url in ("/_emulator/scenario", f"/_emulator/tenants/{TENANT}/scenario"):
        err = assert_error(await emu.client.put(url, json=body), 422, "VALIDATION_ERROR")
        assert fragment in err["message"] + str(err.get("details")), err
    assert ok(await emu.client.get("/_emulator/scenario"))["name"] == "happy-path"
    assert ok(await emu.client.get("/_emulator/scenarios"))["tenants"] == {}


# --- journal ------------------------------------------------------------------------------------


async def test_journal_with_filters(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        await emu.client.get("/v1/models")
        await upload(emu.client)
        await emu.client.get("/v1/files/file-nope")
        await emu.advance(3600)
        await other.post("/v1/inference/chat", json=CHAT_BODY)
        await other.get("/v1/files")

    async def items(**params: Any) -> list[tuple[str, str, int, str | None]]:
        data = ok(await emu.client.get("/_emulator/journal", params=params))
        return [(e["method"], e["path"], e["status"], e["tenant_id"]) for e in data["items"]]

    v1 = await items(path="/v1/")
    assert v1 == [
        ("GET", "/v1/models", 200, TENANT),
        ("POST", "/v1/files", 200, TENANT),
        ("GET", "/v1/files/file-nope", 404, TENANT),
        ("POST", "/v1/inference/chat", 200, OTHER),
        ("GET", "/v1/files", 200, OTHER),
    ]
    assert await items(method="POST", path="/v1") == [v1[1], v1[3]]
    assert await items(method="post", path="/v1") == [v1[1], v1[3]]
    assert await items(path="/v1/files") == [v1[1], v1[2], v1[4]]
    assert await items(status=404) == [v1[2]]
    assert await items(tenant_id=OTHER) == v1[3:]
    assert await items(since="2026-01-01T01:00:00Z", path="/v1") == v1[3:]
    assert await items(path="/v1", limit=2) == v1[3:]
    entry = ok(await emu.client.get("/_emulator/journal", params={"status": 404}))["items"][0]
    assert set(entry) == {
        "time", "method", "path", "query", "status", "tenant_id", "request_id", "request",
        "response",
    }  # fmt: skip
    assert entry["time"] == "2026-01-01T00:00:00.000Z"
    assert entry["request_id"].startswith("req_")


@pytest.mark.parametrize(
    "params",
    [{"status": "abc"}, {"limit": "x"}, {"limit": "0"}, {"limit": "-2"}, {"since": "yesterday"}],
)
async def test_journal_refuses_bad_filters(emu: Harness, params: dict[str, str]) -> None:
    assert_error(await emu.client.get("/_emulator/journal", params=params), 422, "VALIDATION_ERROR")


# --- state --------------------------------------------------------------------------------------


async def test_state_dump(make_emu: MakeEmu) -> None:
    h = await make_emu(admin_token="s3cret")
    headers = {"X-Emulator-Admin-Token": "s3cret"}
    file_id, batch_id = await populate(h, h.client)
    data = ok(await h.client.get("/_emulator/state", headers=headers))
    assert data["clock"] == {"now": "2026-01-01T00:00:00.000Z", "mode": "frozen", "scale": 1.0}
    assert data["settings"]["admin_token"] == "***"
    assert "s3cret" not in str(data)
    assert data["settings"]["seed"] == "0" and data["seed"] == 0
    assert data["scenarios"]["global"]["name"] == "happy-path"
    assert [b["id"] for b in data["batches"]] == [batch_id]
    assert data["batches"][0]["tenant_id"] == TENANT
    assert data["batches"][0]["status"] == "completed"
    assert {f["id"] for f in data["files"]} >= {file_id}
    assert all(f["tenant_id"] == TENANT for f in data["files"])
    assert data["version"] == h.core.version and data["journal_size"] > 0
    only_other = ok(await h.client.get("/_emulator/state", headers=headers,
                                       params={"tenant_id": OTHER}))  # fmt: skip
    assert only_other["batches"] == [] and only_other["files"] == []


# --- the admin token ----------------------------------------------------------------------------


#: control routes open without the admin token: liveness, the sink's receiving end (the
#: emulator's own webhook deliveries post there, and they carry no token), and the dashboard's
#: files (they hold no data: what the page shows comes from the guarded routes)
OPEN_CONTROL = {
    ("GET", "/_emulator/health"), ("POST", "/_emulator/sink/{name}"),
    ("GET", "/_emulator/ui"), ("GET", "/_emulator/ui/{asset}"),
}  # fmt: skip


def control_calls() -> list[tuple[str, str]]:
    out = []
    for route in ROUTES:
        if not route.path.startswith("/_emulator"):
            continue
        path = route.path.replace("{tenant}", TENANT)
        methods = sorted((route.methods or set()) - {"HEAD"})
        out.extend((m, path) for m in methods if (m, route.path) not in OPEN_CONTROL)
    return out


@pytest.mark.parametrize(("method", "path"), control_calls())
async def test_control_routes_need_the_admin_token(
    make_emu: MakeEmu, method: str, path: str
) -> None:
    h = await make_emu(admin_token="t0ken")
    for headers in ({}, {"X-Emulator-Admin-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
        resp = await h.client.request(method, path, headers=headers, json={})
        assert_error(resp, 401, "AUTH_TOKEN_INVALID")
    async with h.client_for(None) as anon:
        assert_error(await anon.request(method, path, json={}), 401, "AUTH_TOKEN_INVALID")


@pytest.mark.parametrize(
    "headers", [{"X-Emulator-Admin-Token": "t0ken"}, {"Authorization": "Bearer t0ken"}]
)
async def test_the_admin_token_opens_the_control_plane(
    make_emu: MakeEmu, headers: dict[str, str]
) -> None:
    h = await make_emu(admin_token="t0ken")
    async with h.client_for(None) as anon:
        ok(await anon.get("/_emulator/clock", headers=headers))
        ok(await anon.post("/_emulator/clock/advance", json={"seconds": 5}, headers=headers))
        ok(await anon.get("/_emulator/state", headers=headers))
        ok(await anon.get("/_emulator/health"))
        ok(await anon.post("/_emulator/sink/open", content=b"a delivery"))
        assert (await anon.get("/openapi.json")).status_code == 200
        assert len(ok(await anon.get("/_emulator/sink/open", headers=headers))["items"]) == 1


async def test_without_an_admin_token_the_control_plane_is_open(emu: Harness) -> None:
    async with emu.client_for(None) as anon:
        ok(await anon.get("/_emulator/clock"))
