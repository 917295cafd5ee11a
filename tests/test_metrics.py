"""`GET /health` and `GET /metrics`: open without a key (as the real service's), and the metrics
parse as Prometheus text and count what happened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from conftest import KEY, Harness, b64, chat_line
from prometheus_client.parser import text_string_to_metric_families

MakeEmu = Callable[..., Awaitable[Harness]]
CHAT_BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
P = "scaigrid_emulator_"


async def scrape(emu: Harness) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `/metrics`, by name and labels, read with prometheus_client's parser."""
    async with emu.client_for(None) as anon:
        resp = await anon.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return samples.get((P + name, frozenset(labels.items())), 0.0)


def requests(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str,
             method: str, status: int) -> float:  # fmt: skip
    return sample(samples, "http_requests_total", route=route, method=method, status=str(status))


async def test_health_and_metrics_need_no_key_even_with_an_admin_token(make_emu: MakeEmu) -> None:
    h = await make_emu(admin_token="t0ken")
    async with h.client_for(None) as anon:
        health = await anon.get("/health")
        control = await anon.get("/_emulator/health")
        assert (await anon.get("/metrics")).status_code == 200
        assert (await anon.get("/_emulator/clock")).status_code == 401  # the rest stays closed
    assert health.status_code == 200
    assert health.json() == control.json()
    assert health.json()["data"] == {"status": "healthy", "version": h.core.version}


async def test_every_family_is_there_from_the_start(emu: Harness) -> None:
    samples = await scrape(emu)
    assert sample(samples, "info", version=emu.core.version) == 1
    for status in ("pending", "processing", "completed", "failed", "cancelled"):
        assert (P + "batches", frozenset({("status", status)})) in samples
    assert sample(samples, "batch_queue_depth") == 0
    for outcome in ("success", "retry", "failed"):
        assert (P + "webhook_deliveries_total", frozenset({("outcome", outcome)})) in samples


async def test_requests_are_counted_by_route_template_method_and_status(emu: Harness) -> None:
    for n in range(3):  # three batch ids, one label set
        await emu.client.get(f"/v1/inference/batch/batch_{n:04d}")
    await emu.client.get("/v1/models")
    await emu.client.get("/v1/models/openai%2Fgpt-4o")
    await emu.client.post("/v1/inference/chat", json=CHAT_BODY)  # the fast path
    async with emu.client_for(None) as anon:
        await anon.post("/v1/inference/chat", json=CHAT_BODY)  # the fast path's 401
    await emu.client.post("/v1/inference/chat", json={**CHAT_BODY, "stream": True})
    await emu.client.get("/no/such/route")
    await emu.client.delete("/v1/models")  # 405: the path's route, the method asked
    await emu.client.request("BREW", "/v1/models")
    samples = await scrape(emu)
    assert requests(samples, "/v1/inference/batch/{batch_id}", "GET", 404) == 3
    assert requests(samples, "/v1/models", "GET", 200) == 1
    assert requests(samples, "/v1/models/{slug}", "GET", 200) == 1
    assert requests(samples, "/v1/inference/chat", "POST", 200) == 2  # plain and streamed
    assert requests(samples, "/v1/inference/chat", "POST", 401) == 1
    assert requests(samples, "unmatched", "GET", 404) == 1
    assert requests(samples, "/v1/models", "DELETE", 405) == 1
    assert requests(samples, "/v1/models", "other", 405) == 1
    routes = {dict(labels)["route"] for name, labels in samples if name.endswith("requests_total")}
    assert not any("batch_0" in route for route in routes)


async def test_batches_by_status_queue_depth_and_requests_processed(emu: Harness) -> None:
    slow = {"X-Emulator-Scenario": "slow-processing"}  # starts after 30 min, 10 min a request
    lines = [chat_line(f"r{i}") for i in range(3)]
    resp = await emu.client.post(
        "/v1/inference/batch", json={"input_file_base64": b64(lines)}, headers=slow
    )
    batch_id = resp.json()["data"]["id"]
    await emu.settle()
    samples = await scrape(emu)
    assert sample(samples, "batches", status="pending") == 1
    assert sample(samples, "batch_queue_depth") == 3
    await emu.advance(30 * 60 + 10 * 60)  # started, one request done
    samples = await scrape(emu)
    assert sample(samples, "batches", status="processing") == 1
    assert sample(samples, "batch_queue_depth") == 2
    assert sample(samples, "batch_requests_processed_total", outcome="succeeded") == 1
    await emu.advance(20 * 60)
    assert (await emu.batch(batch_id))["status"] == "completed"
    samples = await scrape(emu)
    assert sample(samples, "batches", status="completed") == 1
    assert sample(samples, "batches", status="pending") == 0
    assert sample(samples, "batch_queue_depth") == 0
    assert sample(samples, "batch_requests_processed_total", outcome="succeeded") == 3


async def test_webhook_deliveries_are_counted_by_outcome(emu: Harness) -> None:
    url = "http://emulator.test/_emulator/sink/flaky?status=503&count=1"
    made = await emu.client.post("/v1/webhooks", json={"url": url, "secret": "s" * 32})
    assert made.status_code == 200
    await emu.submit([chat_line("r1")])
    await emu.settle()  # the first attempt fails: a retry is due in 30 s
    samples = await scrape(emu)
    assert sample(samples, "webhook_deliveries_total", outcome="retry") == 1
    assert sample(samples, "webhook_deliveries_total", outcome="success") == 0
    await emu.advance(30)
    samples = await scrape(emu)
    assert sample(samples, "webhook_deliveries_total", outcome="success") == 1


FAULTS = """
name: faulty
api_faults:
  - match: {route: "/v1/models", calls: [1]}
    error: {code: MODEL_UNAVAILABLE, status: 503}
faults:
  - match: {content: "*boom*"}
    error: {code: BACKEND_ERROR}
"""


async def test_injected_faults_are_counted_by_kind_and_code(emu: Harness) -> None:
    put = await emu.client.put(f"/_emulator/tenants/{KEY}/scenario", json={"yaml": FAULTS})
    assert put.status_code == 200, put.text
    assert (await emu.client.get("/v1/models")).status_code == 503
    assert (await emu.client.get("/v1/models")).status_code == 200
    boom = {**CHAT_BODY, "messages": [{"role": "user", "content": "boom"}]}
    assert (await emu.client.post("/v1/inference/chat", json=boom)).status_code == 502
    await emu.submit([chat_line("r1", content="boom"), chat_line("r2")])
    await emu.settle()
    samples = await scrape(emu)
    assert sample(samples, "scenario_faults_total", kind="api", code="MODEL_UNAVAILABLE") == 1
    assert sample(samples, "scenario_faults_total", kind="request", code="BACKEND_ERROR") == 2
    assert sample(samples, "batch_requests_processed_total", outcome="failed") == 1
    assert requests(samples, "/v1/models", "GET", 503) == 1  # refused before routing


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\nb"])
def test_label_values_are_escaped(value: str) -> None:
    from emulator.metrics import Census, Metrics, render

    metrics = Metrics()
    metrics.faults[("api", value)] += 1
    text = render(metrics, Census({}, 0), [], "1").decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name.endswith("faults")]
    assert family.samples[0].labels["code"] == value
