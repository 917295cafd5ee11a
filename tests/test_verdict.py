"""The client verdict (GET /_emulator/verdict): each finding made by a deliberately bad client,
with its evidence, and the same job done well making none; thresholds from settings or the
query; what a restart leaves to judge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KEY, OTHER_KEY, Harness, assert_error, b64, chat_line, jsonl

from emulator.tenancy import open_tenant_id

TENANT = open_tenant_id(KEY)
OTHER = open_tenant_id(OTHER_KEY)
BATCH = "/v1/inference/batch"
MakeEmu = Callable[..., Awaitable[Harness]]


async def verdict(h: Harness, tenant: str | None = TENANT, **params: Any) -> list[dict[str, Any]]:
    if tenant is not None:
        params["tenant_id"] = tenant
    resp = await h.client.get("/_emulator/verdict", params=params)
    assert resp.status_code == 200, resp.text
    findings: list[dict[str, Any]] = resp.json()["data"]["findings"]
    return findings


def checks(findings: list[dict[str, Any]]) -> list[str]:
    return [f["check"] for f in findings]


async def use(h: Harness, yaml: str, tenant: str = TENANT) -> None:
    resp = await h.client.put(f"/_emulator/tenants/{tenant}/scenario", json={"yaml": yaml})
    assert resp.status_code == 200, resp.text


async def download(h: Harness, batch_id: str, url: str | None = None) -> httpx.Response:
    """The batch's results; the test's own look for the link is marked as a probe."""
    if url is None:
        probe = await h.client.get(f"{BATCH}/{batch_id}", headers={"X-Emulator-Probe": "test"})
        url = probe.json()["data"]["results_url"]
    async with h.client_for(None) as anon:
        return await anon.get(url)


async def good_job(h: Harness, content: str = "hello") -> str:
    """Submit, poll every 30 s until done, download the results: nothing to find."""
    await use(h, "processing: {start_delay: 1m}")
    batch = await h.submit([chat_line("a", content)])
    while (polled := await h.batch(batch["id"]))["status"] != "completed":
        await h.advance(30)
    assert (await download(h, batch["id"], polled["results_url"])).status_code == 200
    return str(batch["id"])


async def test_a_good_client_has_no_findings(emu: Harness) -> None:
    await good_job(emu)
    await good_job(emu, "another input")
    assert await verdict(emu) == []
    data = (await emu.client.get("/_emulator/verdict")).json()["data"]
    assert data["thresholds"] == {"min_poll_interval": 10.0, "rate_limit": 60}
    assert data["findings"] == [] and data["requests_judged"] > 0


# --- polling ----------------------------------------------------------------------------------


async def test_polling_faster_than_the_interval(emu: Harness) -> None:
    await use(emu, "processing: {start_delay: 1h}")
    batch = await emu.submit([chat_line("a")])
    polls = [await emu.client.get(f"{BATCH}/{batch['id']}") for _ in range(3)]
    await emu.advance(30)
    await emu.client.get(f"{BATCH}/{batch['id']}")  # this one waited long enough
    [finding] = await verdict(emu)
    assert finding["check"] == "poll_rate" and finding["subject"] == batch["id"]
    assert finding["tenant_id"] == TENANT
    assert "polled " + batch["id"] + " 4 times; 2 of them came less than 10 s" in finding["message"]
    ids = [p.headers["x-request-id"] for p in polls[1:]]
    assert [e["request_id"] for e in finding["evidence"]] == ids
    assert finding["evidence"][0] == {
        "request_id": ids[0], "time": "2026-01-01T00:00:00.000Z", "method": "GET",
        "path": f"{BATCH}/{batch['id']}", "status": 200, "since_previous": 0.0,
    }  # fmt: skip
    assert finding["evidence_count"] == 2


async def test_the_poll_interval_is_a_setting_and_a_query_parameter(make_emu: MakeEmu) -> None:
    h = await make_emu(verdict_min_poll_interval=60)
    await use(h, "processing: {start_delay: 1h}")
    batch = await h.submit([chat_line("a")])
    for _ in range(3):
        await h.batch(batch["id"])
        await h.advance(30)
    assert checks(await verdict(h)) == ["poll_rate"]
    assert await verdict(h, min_poll_interval=30) == []
    assert checks(await verdict(h, min_poll_interval="30.5")) == ["poll_rate"]


async def test_the_fixtures_own_looks_are_not_judged(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    await emu.advance(0)
    for _ in range(3):
        await emu.client.get(f"{BATCH}/{batch['id']}", headers={"X-Emulator-Probe": "wait_for"})
    assert (await download(emu, batch["id"])).status_code == 200
    assert await verdict(emu) == []


# --- Retry-After ------------------------------------------------------------------------------


async def test_ignoring_retry_after_of_a_rate_limit(emu: Harness) -> None:
    await use(emu, "rate_limit: {requests: 1, per: 60s}")
    assert (await emu.client.get("/v1/models")).status_code == 200
    refused = await emu.client.get("/v1/models")
    assert_error(refused, 429, "RATE_LIMITED")
    assert refused.headers["retry-after"] == "60"
    await emu.advance(5)
    again = await emu.client.get("/v1/files")  # the limit is the key's: any route counts
    [finding] = await verdict(emu)
    assert finding["check"] == "retry_after_ignored" and finding["subject"] == "any route"
    [evidence] = finding["evidence"]
    assert evidence["request_id"] == again.headers["x-request-id"]
    assert evidence["after"] == refused.headers["x-request-id"]
    assert (evidence["retry_after"], evidence["waited"]) == (60.0, 5.0)


async def test_ignoring_retry_after_of_an_outage_on_the_same_route(emu: Harness) -> None:
    await use(
        emu,
        "api_faults:\n  - match: {route: /v1/inference/chat, calls: [1]}\n"
        "    error: {code: MODEL_UNAVAILABLE, status: 503, retry_after: 30}\n",
    )
    body = chat_line("a")["body"]
    assert_error(await emu.client.post("/v1/inference/chat", json=body), 503, "MODEL_UNAVAILABLE")
    await emu.client.get("/v1/models")  # another route: not a retry of the refused one
    await emu.advance(10)
    await emu.client.post("/v1/inference/chat", json=body)
    [finding] = await verdict(emu)
    assert (finding["check"], finding["subject"]) == (
        "retry_after_ignored",
        "POST /v1/inference/chat",
    )
    assert finding["evidence"][0]["waited"] == 10.0


async def test_waiting_out_retry_after_is_fine(emu: Harness) -> None:
    await use(emu, "rate_limit: {requests: 1, per: 60s}")
    await emu.client.get("/v1/models")
    refused = await emu.client.get("/v1/models")
    await emu.advance(int(refused.headers["retry-after"]))
    assert (await emu.client.get("/v1/models")).status_code == 200
    assert await verdict(emu) == []


# --- errors that do not change ----------------------------------------------------------------


async def test_retrying_quota_exceeded(make_emu: MakeEmu) -> None:
    h = await make_emu(max_requests_per_batch=1)
    body = {"input_file_base64": b64([chat_line("a"), chat_line("b")])}
    first = await h.client.post(BATCH, json=body)
    assert_error(first, 429, "QUOTA_EXCEEDED")
    second = await h.client.post(BATCH, json=body)
    [finding] = await verdict(h)
    assert finding["check"] == "retried_permanent_error"
    assert finding["subject"] == f"POST {BATCH}"
    assert "after 429 QUOTA_EXCEEDED" in finding["message"]
    [evidence] = finding["evidence"]
    assert evidence["request_id"] == second.headers["x-request-id"]
    assert evidence["after"] == first.headers["x-request-id"]


async def test_retrying_quota_exceeded_on_the_openai_surface(make_emu: MakeEmu) -> None:
    h = await make_emu(max_active_batches=1)
    await h.submit([chat_line("a")])  # pending: the one active batch allowed
    up = await h.client.post(
        "/oai/v1/files",
        files={"file": ("in.jsonl", jsonl([chat_line("b")]), "application/jsonl")},
        data={"purpose": "batch"},
    )
    body = {"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions",
            "completion_window": "24h"}  # fmt: skip
    for _ in range(2):
        resp = await h.client.post("/oai/v1/batches", json=body)
        assert resp.json()["error"]["code"] == "insufficient_quota"
    [finding] = await verdict(h)
    assert finding["check"] == "retried_permanent_error"
    assert "after 429 QUOTA_EXCEEDED" in finding["message"]


async def test_repeating_a_request_that_got_a_4xx(emu: Harness) -> None:
    bad = {"input_file_base64": "not base64!"}
    for _ in range(3):
        assert_error(await emu.client.post(BATCH, json=bad), 422, "VALIDATION_ERROR")
    for _ in range(2):
        assert_error(await emu.client.get(f"{BATCH}/batch_nope"), 404, "BATCH_NOT_FOUND")
    found = {f["subject"]: f for f in await verdict(emu, min_poll_interval=0)}
    assert found[f"POST {BATCH}"]["evidence_count"] == 2
    assert "after 422 VALIDATION_ERROR" in found[f"POST {BATCH}"]["message"]
    assert "after 404 BATCH_NOT_FOUND" in found[f"GET {BATCH}/batch_nope"]["message"]


async def test_fixing_the_request_after_a_4xx_is_fine(emu: Harness) -> None:
    assert_error(await emu.client.post(BATCH, json={"input_file_base64": "!"}), 422,
                 "VALIDATION_ERROR")  # fmt: skip
    batch = await emu.submit([chat_line("a")])
    await emu.advance(0)
    assert (await download(emu, batch["id"])).status_code == 200
    assert await verdict(emu) == []


# --- results ----------------------------------------------------------------------------------


async def test_downloading_an_expired_or_altered_results_link(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    await emu.advance(0)
    url = (await emu.batch(batch["id"]))["results_url"]
    await emu.advance(2 * 3600)
    async with emu.client_for(None) as anon:
        expired = await anon.get(url)
        altered = await anon.get(url.replace("signature=", "signature=0"))
    assert_error(expired, 403, "RESULTS_URL_EXPIRED")
    assert_error(altered, 403, "RESULTS_URL_INVALID")
    assert (await download(emu, batch["id"])).status_code == 200  # a fresh link works
    [finding] = await verdict(emu)
    assert (finding["check"], finding["subject"]) == ("results_url_refused", batch["id"])
    assert "403 RESULTS_URL_EXPIRED, 403 RESULTS_URL_INVALID" in finding["message"]
    assert [(e["request_id"], e["code"]) for e in finding["evidence"]] == [
        (expired.headers["x-request-id"], "RESULTS_URL_EXPIRED"),
        (altered.headers["x-request-id"], "RESULTS_URL_INVALID"),
    ]


async def test_never_downloading_finished_results(emu: Harness) -> None:
    batch = await emu.submit([chat_line("a")])
    await emu.advance(0)
    seen = await emu.client.get(f"{BATCH}/{batch['id']}")
    [finding] = await verdict(emu)
    assert (finding["check"], finding["subject"]) == ("results_never_downloaded", batch["id"])
    assert finding["message"] == (
        f"{batch['id']} completed at 2026-01-01T00:00:00.000Z and its results were never "
        "downloaded (its status was read 1 time since)"
    )
    assert [e["request_id"] for e in finding["evidence"]] == [seen.headers["x-request-id"]]
    assert (await download(emu, batch["id"])).status_code == 200
    assert await verdict(emu) == []


async def test_an_openai_output_file_download_counts(emu: Harness) -> None:
    up = await emu.client.post(
        "/oai/v1/files",
        files={"file": ("in.jsonl", jsonl([chat_line("a")]), "application/jsonl")},
        data={"purpose": "batch"},
    )
    body = {"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions",
            "completion_window": "24h"}  # fmt: skip
    created = (await emu.client.post("/oai/v1/batches", json=body)).json()
    await emu.advance(0)
    assert checks(await verdict(emu)) == ["results_never_downloaded"]
    done = (await emu.client.get(f"/oai/v1/batches/{created['id']}")).json()
    content = await emu.client.get(f"/oai/v1/files/{done['output_file_id']}/content")
    assert content.status_code == 200
    assert await verdict(emu) == []


# --- inputs and the rate limit ----------------------------------------------------------------


async def test_submitting_the_same_input_twice(emu: Harness) -> None:
    lines = [chat_line("a"), chat_line("b")]
    first = await emu.client.post(BATCH, json={"input_file_base64": b64(lines)})
    second = await emu.client.post(
        BATCH, json={"input_file_base64": b64(lines), "metadata": {"try": "2"}}
    )
    other = await emu.submit([chat_line("c")])
    await emu.advance(0)
    for batch_id in (first.json()["data"]["id"], second.json()["data"]["id"], other["id"]):
        assert (await download(emu, batch_id)).status_code == 200
    [finding] = await verdict(emu)
    assert finding["check"] == "duplicate_input"
    assert [(e["request_id"], e["batch_id"]) for e in finding["evidence"]] == [
        (first.headers["x-request-id"], first.json()["data"]["id"]),
        (second.headers["x-request-id"], second.json()["data"]["id"]),
    ]
    assert "submitted the same input 2 times" in finding["message"]


async def test_the_same_uploaded_file_twice(emu: Harness) -> None:
    files = {"file": ("in.jsonl", jsonl([chat_line("a")]), "application/jsonl")}
    file_id = (await emu.client.post("/v1/files", files=files)).json()["data"]["id"]
    for _ in range(2):
        resp = await emu.client.post(BATCH, json={"input_file_url": f"scaigrid://file/{file_id}"})
        assert resp.status_code == 200
    assert "duplicate_input" in checks(await verdict(emu))


async def test_going_over_the_production_rate_limit(emu: Harness) -> None:
    answers = [await emu.client.get("/v1/models") for _ in range(62)]
    assert {a.status_code for a in answers} == {200}  # the emulator let them through
    [finding] = await verdict(emu)
    assert finding["check"] == "rate_limit_exceeded"
    assert finding["subject"] == "Bearer sgk_…aaaa"
    assert finding["message"] == (
        "made 62 requests within 60 s with one key; production allows 60 a minute per key and "
        "would have answered 2 requests 429 RATE_LIMITED"
    )
    over = [a.headers["x-request-id"] for a in answers[60:]]
    assert [e["request_id"] for e in finding["evidence"]] == over
    assert await verdict(emu, rate_limit=100) == []


async def test_sixty_a_minute_is_within_the_limit(emu: Harness) -> None:
    for _ in range(90):
        await emu.client.get("/v1/models")
        await emu.advance(1)
    assert await verdict(emu) == []


# --- scope, queries, restarts -----------------------------------------------------------------


async def test_findings_are_per_tenant(emu: Harness) -> None:
    async with emu.client_for(OTHER_KEY) as other:
        for _ in range(2):
            await other.get(f"{BATCH}/batch_nope")
    assert await verdict(emu) == []
    [finding] = await verdict(emu, OTHER, min_poll_interval=0)
    assert finding["tenant_id"] == OTHER
    assert [f["tenant_id"] for f in await verdict(emu, None, min_poll_interval=0)] == [OTHER]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_poll_interval": "soon"}, "min_poll_interval"),
        ({"min_poll_interval": "-1"}, "min_poll_interval"),
        ({"rate_limit": "0"}, "rate_limit"),
        ({"rate_limit": "1.5"}, "rate_limit"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"min_poll": "5"}, "min_poll"),
    ],
)
async def test_a_bad_query_is_named(emu: Harness, params: dict[str, str], field: str) -> None:
    resp = await emu.client.get("/_emulator/verdict", params=params)
    error = assert_error(resp, 422, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == [field]
    assert f"'{field}'" in error["message"]


async def test_after_a_restart_the_summaries_are_judged(make_emu: MakeEmu, tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    h = await make_emu(db=db)
    await use(h, "processing: {start_delay: 1h}")
    batch = await h.submit([chat_line("a")])
    for _ in range(3):
        await h.batch(batch["id"])
    await h.close()
    await h.core.stop()
    h2 = await make_emu(db=db)
    [finding] = await verdict(h2)
    assert finding["check"] == "poll_rate" and finding["evidence_count"] == 2
