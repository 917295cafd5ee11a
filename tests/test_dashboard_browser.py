"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) through Playwright,
against a real uvicorn server (the `scaigrid` fixture's). Batches are submitted through the API
and the clock is moved through the page or the API; the page must follow without a reload, and
show what the API says. Playwright's `expect` waits for what the page shows (no sleeps).

Each test saves a screenshot and prints where. Without Chromium or Playwright these tests are
skipped, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from conftest import SCREENSHOTS

from emulator.pytest_plugin import EmulatorServer, Scaigrid

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

XSS = "<img src=x onerror=alert(1)>"
#: Playwright launches Chromium with the sandbox off already; these keep it off the network
#: beyond loopback and quiet
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions", "--mute-audio",
]  # fmt: skip
SLOW = "slow-processing"  # starts 30 min after submit, then one request every 10 min
HOURLY_THOUSAND = "{processing: {latency: 1h, concurrency: 1000}}"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed for the browser tests in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if executable is None:
        _missing("chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (the test extra)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


class Dashboard:
    """The page, and every dialog it tried to open (a script run from data would open one)."""

    def __init__(self, page: Page, shots: Path, name: str) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.shots = shots
        self.name = name
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, base_url: str) -> Page:
        self.page.goto(f"{base_url}/_emulator/ui")
        return self.page

    def batch_row(self, batch_id: str) -> Any:
        return self.page.locator(f'tr[data-batch-id="{batch_id}"]')

    def screenshot(self, label: str = "") -> Path:
        path = self.shots / f"{self.name}{'-' + label if label else ''}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def dashboard(
    browser: Browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    if SCREENSHOTS not in request.config.stash:  # one folder a session; pytest keeps the last few
        request.config.stash[SCREENSHOTS] = tmp_path_factory.mktemp("dashboard-screenshots")
    shots = request.config.stash[SCREENSHOTS]
    board = Dashboard(context.new_page(), shots, request.node.name)
    yield board
    context.close()
    assert board.errors == [], board.errors


def submit(scaigrid: Scaigrid, lines: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    payload = base64.b64encode(b"".join(orjson.dumps(x) + b"\n" for x in lines)).decode()
    headers = {"X-Emulator-Scenario": body.pop("scenario")} if "scenario" in body else {}
    resp = scaigrid.client.post(
        "/v1/inference/batch", json={"input_file_base64": payload, **body}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


def chat(custom_id: str) -> dict[str, Any]:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/inference/chat", "body": body}


def embed(custom_id: str) -> dict[str, Any]:
    body = {"model": "openai/text-embedding-3-small", "input": ["x"]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/inference/embed", "body": body}


def api_batch(scaigrid: Scaigrid, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = scaigrid.client.get(f"/v1/inference/batch/{batch_id}").json()["data"]
    return data


def test_batches_progress_on_the_page_as_the_clock_moves(
    scaigrid: Scaigrid, dashboard: Dashboard
) -> None:
    from playwright.sync_api import expect

    scaigrid.use_scenario(SLOW)
    batch = submit(scaigrid, [chat("a"), chat("b"), chat("c")], metadata={"note": XSS})
    page = dashboard.open(scaigrid.base_url)
    row = dashboard.batch_row(batch["id"])
    expect(row.locator(".status")).to_have_text("pending")
    expect(row.locator(".counts")).to_have_text("0/3")
    # the metadata is text on the page: no element made of it, no dialog opened
    expect(row.locator(".metadata")).to_have_text(f"note={XSS}")
    assert row.locator(".metadata img").count() == 0 and page.locator("img").count() == 0

    # the page's own button: 40 minutes is the start delay and one request
    page.get_by_label("advance by").fill("40m")
    page.get_by_role("button", name="Advance clock").click()
    expect(row.locator(".counts")).to_have_text("1/3")
    expect(row.locator(".status")).to_have_text("processing")
    seen = api_batch(scaigrid, batch["id"])
    assert (seen["status"], seen["completed_count"]) == ("processing", 1)
    expect(page.get_by_test_id("clock")).to_contain_text(scaigrid.now()[:16].replace("T", " "))
    dashboard.screenshot("processing")

    # moved by the API, not the page: the page follows without a reload
    scaigrid.advance(minutes=20)
    expect(row.locator(".status")).to_have_text("completed")
    done = api_batch(scaigrid, batch["id"])
    expect(row.locator(".counts")).to_have_text(f"{done['completed_count']}/{done['total_count']}")
    expect(row.locator(".cost")).to_have_text(f"{done['cost']['amount']} USD")
    expect(row.locator("progress")).to_have_attribute("value", "3")
    assert row.locator("button", has_text="Cancel").count() == 0  # a final batch has none
    dashboard.screenshot("completed")
    assert dashboard.dialogs == []


def test_cancel_from_the_page(scaigrid: Scaigrid, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    batch = submit(scaigrid, [chat("a"), chat("b")], scenario=SLOW)
    page = dashboard.open(scaigrid.base_url)
    row = dashboard.batch_row(batch["id"])
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".status")).to_have_text("cancelled")
    expect(page.get_by_test_id("message")).to_have_text(f"{batch['id']} cancelled")
    assert api_batch(scaigrid, batch["id"])["status"] == "cancelled"
    dashboard.screenshot()


def test_a_50000_line_batch_opens_in_under_a_second(
    scaigrid: Scaigrid, dashboard: Dashboard
) -> None:
    from playwright.sync_api import expect

    lines = [embed(f"r{i}") for i in range(50_000)]
    lines[3]["custom_id"] = XSS  # user-supplied text in the lines table too
    batch = submit(scaigrid, lines, scenario=HOURLY_THOUSAND)
    scaigrid.advance(hours=1)  # the first thousand are done, the rest pending
    page = dashboard.open(scaigrid.base_url)
    link = dashboard.batch_row(batch["id"]).get_by_role("link", name=batch["id"])
    expect(link).to_be_visible()
    started = time.perf_counter()
    link.click()
    expect(page.get_by_test_id("detail-range")).to_have_text("lines 1–100 of 50000")
    opened = time.perf_counter() - started
    assert opened < 1.0, f"the detail took {opened:.2f} s to show"
    lines_shown = page.locator("#lines tr")
    expect(lines_shown).to_have_count(100)
    expect(lines_shown.nth(3).locator(".custom-id")).to_have_text(XSS)
    expect(lines_shown.nth(0).locator(".status")).to_have_text("ok")
    dashboard.screenshot("detail")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("detail-range")).to_have_text("lines 101–200 of 50000")
    page.get_by_label("show lines").select_option("pending")
    expect(page.get_by_test_id("detail-range")).to_have_text("lines 1001–1100 of 50000")
    expect(lines_shown.first.locator(".status")).to_have_text("pending")
    assert dashboard.dialogs == []


def test_webhooks_journal_and_verdict(scaigrid: Scaigrid, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    hook = scaigrid.sink("dash").register()
    batch = submit(scaigrid, [chat("a")])
    scaigrid.advance(0)
    for _ in range(3):  # polling in a tight loop: the verdict's poll_rate
        scaigrid.client.get(f"/v1/inference/batch/{batch['id']}")
    page = dashboard.open(scaigrid.base_url)

    page.get_by_role("button", name="Webhooks").click()
    page.get_by_role("link", name=hook["id"]).click()
    [delivery] = scaigrid.client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"][
        "items"
    ]
    shown = page.locator(f'tr[data-delivery-id="{delivery["id"]}"]')
    expect(shown.locator(".status")).to_have_text("success")

    page.get_by_role("button", name="Journal").click()
    page.get_by_label("path").fill("/v1/inference/batch/*")
    page.get_by_label("tenant id").fill(scaigrid.tenant_id)
    page.get_by_role("button", name="Filter").click()
    entries = scaigrid.journal(path="/v1/inference/batch/*", tenant_id=scaigrid.tenant_id)
    rows = page.locator("#journal tr")
    expect(rows).to_have_count(len(entries))
    expect(rows.first).to_contain_text(entries[-1]["request_id"])  # newest first
    dashboard.screenshot("journal")

    page.get_by_role("button", name="Verdict").click()
    checks = [f["check"] for f in scaigrid.verdict()]
    assert "poll_rate" in checks
    finding = page.locator('#verdict > li[data-check="poll_rate"]')
    expect(finding).to_contain_text(scaigrid.tenant_id)
    dashboard.screenshot("verdict")


def test_reset_a_tenant_and_set_its_scenario(scaigrid: Scaigrid, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    batch = submit(scaigrid, [chat("a")])
    page = dashboard.open(scaigrid.base_url)
    tenant = page.locator(f'section.tenant[data-tenant="{scaigrid.tenant_id}"]')
    tenant.get_by_label(f"scenario of {scaigrid.tenant_id}").select_option("flaky-backend")
    tenant.get_by_role("button", name="Set scenario").click()
    expect(tenant.locator(".scenario")).to_have_text("scenario: flaky-backend")
    own = scaigrid.client.get(f"/_emulator/tenants/{scaigrid.tenant_id}/scenario")
    assert own.json()["data"]["name"] == "flaky-backend"
    tenant.get_by_role("button", name="Reset tenant").click()
    expect(tenant).to_have_count(0)
    gone = scaigrid.client.get(f"/v1/inference/batch/{batch['id']}")
    assert gone.json()["error"]["code"] == "BATCH_NOT_FOUND"
    dashboard.screenshot()


def test_the_admin_token_guards_the_dashboard(
    guarded: EmulatorServer, dashboard: Dashboard
) -> None:
    from playwright.sync_api import expect

    page = dashboard.open(guarded.base_url)
    login = page.locator("#login")
    expect(login).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    page.get_by_label("admin token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("message")).to_have_text("That admin token was refused.")
    expect(page.locator("#main")).to_be_hidden()
    page.get_by_label("admin token").fill("t0ken")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#main")).to_be_visible()
    expect(login).to_be_hidden()
    # signed in, the switch goes through with the token: the global scenario changes
    page.get_by_label("global scenario").select_option("realistic-latency")
    page.get_by_role("button", name="Use", exact=True).click()
    expect(page.get_by_test_id("message")).to_have_text("global scenario: realistic-latency")
    headers = {"X-Emulator-Admin-Token": "t0ken"}
    with httpx.Client(base_url=guarded.base_url, headers=headers) as control:
        assert control.get("/_emulator/scenario").json()["data"]["name"] == "realistic-latency"
    dashboard.screenshot()


def test_scenario_text_is_shown_as_text(scaigrid: Scaigrid, dashboard: Dashboard) -> None:
    from playwright.sync_api import expect

    text = f"name: sneaky\ndescription: '{XSS} <script>alert(2)</script>'\n"
    scaigrid.use_scenario(text)
    page = dashboard.open(scaigrid.base_url)
    page.get_by_role("button", name="Scenarios").click()
    row = page.locator(f'#scenarios tr[data-scope="{scaigrid.tenant_id}"]')
    expect(row.locator(".description")).to_have_text(f"{XSS} <script>alert(2)</script>")
    expect(page.locator(f'#scenario-yaml pre[data-scope="{scaigrid.tenant_id}"]')).to_have_text(
        text
    )
    assert page.locator("#scenarios img, #scenarios script").count() == 0
    dashboard.screenshot()
    assert dashboard.dialogs == []


def test_a_missing_browser_fails_in_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="needed for the browser tests in CI"):
        _missing("chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        _missing("chromium")
