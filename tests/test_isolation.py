"""Isolation: another tenant's batches, files, webhooks, deliveries and results answer exactly as
ids that do not exist, on both surfaces and through the control plane's tenant views; results and
image links cannot be bent or outlive their expiry; the admin token guards the control plane and
the dashboard's data; keys and secrets never appear in an answer, the log or the journal; and
`--signing-secret` is the secret links are signed with."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from conftest import KEY, OTHER_KEY, Harness, assert_error, b64, chat_line, jsonl

from emulator.api.openapi import template
from emulator.api.routes import ROUTES, Op

SINK = "http://emulator.test/_emulator/sink/a"
HOOK_SECRET = "whsec-isolation-" + "s" * 24
NEW_SECRET = "whsec-rotated-" + "r" * 24
ADMIN = "admin-token-for-isolation"
SIGNING = "signing-secret-for-isolation"
OAI_ENDPOINT = "/v1/chat/completions"


async def _ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body.get("data", body)


async def world(emu: Harness) -> dict[str, str]:
    """Tenant A's objects, each kind on each surface: ids by name, and A's own view of them."""
    c = emu.client
    file = await _ok(
        await c.post("/v1/files", files={"file": ("a.jsonl", jsonl([chat_line("a")]))})
    )
    batch = await emu.submit([chat_line("a"), chat_line("b")])
    hook = await _ok(await c.post("/v1/webhooks", json={
        "url": SINK, "events": ["batch.completed"], "secret": HOOK_SECRET}))  # fmt: skip
    oai_line = {**chat_line("o"), "url": OAI_ENDPOINT}
    upload = {"file": ("o.jsonl", jsonl([oai_line]))}
    oai_file = await _ok(await c.post("/oai/v1/files", files=upload, data={"purpose": "batch"}))
    create = {"input_file_id": oai_file["id"], "endpoint": OAI_ENDPOINT, "completion_window": "24h"}
    oai_batch = await _ok(await c.post("/oai/v1/batches", json=create))
    pending = await emu.submit([chat_line("p")], endpoint_completion_window="24h")
    await emu.settle()
    await _ok(await c.post(f"/v1/webhooks/{hook['id']}/test"))
    output = (await _ok(await c.get(f"/oai/v1/batches/{oai_batch['id']}")))["output_file_id"]
    assert output, "the OpenAI batch has no output file"
    return {
        "batch": batch["id"], "file": file["id"], "webhook": hook["id"],
        "oai_batch": oai_batch["id"], "oai_file": oai_file["id"], "output": output,
        "pending": pending["id"], "tenant": _tenant(emu, KEY),
    }  # fmt: skip


def _tenant(emu: Harness, key: str) -> str:
    return emu.core.tenancy.authenticate(f"Bearer {key}").tenant_id


#: every tenant-scoped operation, with A's object in it: (method, path, body). Each is sent by
#: tenant B, and must be answered as the same operation on an id that does not exist.
SWEEP: list[tuple[str, str, Any]] = [
    ("GET", "/v1/inference/batch/{batch}", None),
    ("POST", "/v1/inference/batch/{pending}/cancel", None),
    ("POST", "/v1/inference/batch", {"input_file_url": "scaigrid://file/{file}"}),
    ("GET", "/v1/files/{file}", None),
    ("DELETE", "/v1/files/{file}", None),
    ("GET", "/v1/files/{file}/content", None),
    ("GET", "/v1/webhooks/{webhook}", None),
    ("PUT", "/v1/webhooks/{webhook}", {"url": "http://elsewhere.test/h"}),
    ("DELETE", "/v1/webhooks/{webhook}", None),
    ("POST", "/v1/webhooks/{webhook}/test", None),
    ("GET", "/v1/webhooks/{webhook}/deliveries", None),
    ("GET", "/oai/v1/batches/{oai_batch}", None),
    ("POST", "/oai/v1/batches/{oai_batch}/cancel", None),
    ("POST", "/oai/v1/batches",
     {"input_file_id": "{oai_file}", "endpoint": OAI_ENDPOINT, "completion_window": "24h"}),
    ("GET", "/oai/v1/files/{oai_file}", None),
    ("DELETE", "/oai/v1/files/{oai_file}", None),
    ("GET", "/oai/v1/files/{oai_file}/content", None),
    ("GET", "/oai/v1/files/{output}/content", None),
    ("GET", "/oai/v1/files/{output}", None),
    ("GET", "/_emulator/tenants/{B}/batches/{batch}/lines", None),
    ("POST", "/_emulator/tenants/{B}/batches/{pending}/cancel", None),
    ("GET", "/_emulator/tenants/{B}/webhooks/{webhook}/deliveries", None),
]  # fmt: skip
#: ids of the same shapes that name nothing
MISSING = {
    "batch": "batch_0000000000000000ffffffff", "pending": "batch_0000000000000000fffffffe",
    "file": "file-0000000000000000ffffffff", "webhook": "wh_0000000000000000ffffffff",
    "oai_batch": "batch_0000000000000000fffffffd", "oai_file": "file-0000000000000000fffffffe",
    "output": "file-0000000000000000fffffffd",
}  # fmt: skip
#: operations on no tenant's objects, or on all of them (the control plane's by design)
NOT_SCOPED = {"/v1/inference/batch/{batch_id}/results", "/v1/inference/images/{digest}.png",
              "/_emulator/sink/{name}"}  # fmt: skip


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_the_sweep_covers_every_route_on_one_object() -> None:
    """A route added on a batch, file or webhook must be added to the sweep."""
    swept = {(m, re.sub(r"\{\w+\}", "{}", p)) for m, p, _ in SWEEP}
    for route in ROUTES:
        assert isinstance(route, Op)
        path = template(route.path)
        if path in NOT_SCOPED or not re.search(r"\{(batch_id|file_id|webhook_id)\}", path):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                assert (method, re.sub(r"\{\w+\}", "{}", path)) in swept, (method, path)


async def test_another_tenants_objects_answer_as_ids_that_do_not_exist(emu: Harness) -> None:
    ids = await world(emu)
    b_tenant = _tenant(emu, OTHER_KEY)
    before = await _ok(
        await emu.client.get("/_emulator/state", params={"tenant_id": ids["tenant"]})
    )
    problems = []
    async with emu.client_for(OTHER_KEY) as other:
        for method, path, body in SWEEP:
            theirs = await other.request(method, _fill(path, {**ids, "B": b_tenant}),
                                         json=_fill(body, ids))  # fmt: skip
            none = await other.request(method, _fill(path, {**ids, **MISSING, "B": b_tenant}),
                                       json=_fill(body, {**ids, **MISSING}))  # fmt: skip
            answer = (theirs.status_code, _code(theirs))
            if answer != (none.status_code, _code(none)) or theirs.status_code not in (400, 404):
                problems.append(f"{method} {path}: {answer} {theirs.text[:200]}")
        # B's lists, on both surfaces, show none of A's objects
        for path in ("/v1/inference/batch", "/v1/files", "/v1/webhooks", "/oai/v1/files",
                     "/oai/v1/batches"):  # fmt: skip
            text = (await other.get(path)).text
            problems += [f"{path} lists {k}" for k, v in ids.items() if k != "tenant" and v in text]
    assert not problems, "\n".join(problems)
    # and nothing of A's changed
    after = await _ok(await emu.client.get("/_emulator/state", params={"tenant_id": ids["tenant"]}))
    assert after["batches"] == before["batches"] and after["files"] == before["files"]
    assert after["webhooks"] == before["webhooks"]


def _code(resp: httpx.Response) -> str:
    error = resp.json()["error"]
    return str(error["code"])


async def test_the_control_planes_views_keep_tenants_apart(emu: Harness) -> None:
    ids = await world(emu)
    async with emu.client_for(OTHER_KEY) as other:
        await other.post("/v1/inference/chat", json={"model": "openai/gpt-4o", "messages": [
            {"role": "user", "content": "hi"}]})  # fmt: skip
    b_tenant = _tenant(emu, OTHER_KEY)
    journal = await _ok(await emu.client.get("/_emulator/journal", params={"tenant_id": b_tenant}))
    assert journal["items"] and {e["tenant_id"] for e in journal["items"]} == {b_tenant}
    state = (await emu.client.get("/_emulator/state", params={"tenant_id": b_tenant})).text
    assert not [k for k, v in ids.items() if v in state]
    verdict = (await emu.client.get("/_emulator/verdict", params={"tenant_id": b_tenant})).text
    assert not [k for k, v in ids.items() if v in verdict]


# --- links ---------------------------------------------------------------------------------------


def _bent(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    query = {k: v for k, v in query.items() if v != ""}
    return f"{parts.path}?{urlencode(query)}"


async def test_tampered_and_expired_results_links_are_refused(emu: Harness) -> None:
    mine = await emu.submit([chat_line("a")])
    theirs = await emu.submit([chat_line("b")], client=emu.client_for(OTHER_KEY))
    await emu.settle()
    url = (await emu.batch(mine["id"]))["results_url"]
    sig = parse_qs(urlsplit(url).query)["signature"][0]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    async with emu.client_for(None) as anon:
        assert (await anon.get(url)).status_code == 200
        for bent in (
            _bent(url.replace(mine["id"], theirs["id"])),  # to another tenant's batch
            _bent(url, expires=str(int(expires) + 1)),  # a later expiry
            _bent(url, signature=sig[:-1] + ("0" if sig[-1] != "0" else "1")),
            _bent(url, signature=sig.upper()),
            _bent(url, signature=""),
            _bent(url, expires=""),
        ):
            assert_error(await anon.get(bent), 403, "RESULTS_URL_INVALID")
        await emu.advance(3600)
        assert_error(await anon.get(url), 403, "RESULTS_URL_EXPIRED")


async def test_tampered_and_expired_image_links_are_refused(emu: Harness) -> None:
    body = {
        "model": "openai/dall-e-2",
        "prompt": "a fox",
        "size": "256x256",
        "response_format": "url",
    }
    url = (await _ok(await emu.client.post("/v1/inference/images/generate", json=body)))["data"][0][
        "url"
    ]
    async with emu.client_for(None) as anon:
        assert (await anon.get(url)).status_code == 200
        for bent in (
            _bent(url.replace("256x256", "512x512")),
            _bent(url, signature="0" * 64),
            _bent(url, expires="99999999999999"),
        ):
            assert_error(await anon.get(bent), 403, "RESULTS_URL_INVALID")
        await emu.advance(3600)
        assert_error(await anon.get(url), 403, "RESULTS_URL_EXPIRED")


# --- the admin token ------------------------------------------------------------------------------

#: what answers without the token: liveness, the sink's posts (the sender needs no token), the
#: dashboard's files (they hold no data; its data comes from the guarded routes)
OPEN = {("GET", "/_emulator/health"), ("POST", "/_emulator/sink/{name}"),
        ("GET", "/_emulator/ui"), ("GET", "/_emulator/ui/{asset}")}  # fmt: skip


def _control_routes() -> list[tuple[str, str]]:
    out = []
    for route in ROUTES:
        path = template(route.path)
        if path.startswith("/_emulator"):
            out += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


async def test_the_admin_token_guards_the_control_plane_and_the_dashboards_data(
    make_emu: Any,
) -> None:
    emu = await make_emu(admin_token=ADMIN)
    answered_without = set()
    for method, path in _control_routes():
        concrete = path.replace("{asset}", "app.js").replace("{tenant}", KEY)
        concrete = re.sub(r"\{\w+\}", "x", concrete)
        for headers in ({}, {"X-Emulator-Admin-Token": "wrong"}, {"X-Emulator-Dashboard": "1"}):
            resp = await emu.client.request(method, concrete, headers=headers)
            if resp.status_code != 401:
                answered_without.add((method, path))
            else:
                assert_error(resp, 401, "AUTH_TOKEN_INVALID")
        resp = await emu.client.request(method, concrete, headers={"X-Emulator-Admin-Token": ADMIN})
        assert resp.status_code != 401, (method, path)
    assert answered_without == OPEN
    page = await emu.client.get("/_emulator/ui")
    assert page.status_code == 200 and "batch_" not in page.text


# --- secrets --------------------------------------------------------------------------------------


async def test_keys_and_secrets_never_appear_in_answers_the_log_or_the_journal(
    make_emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = await make_emu(admin_token=ADMIN, signing_secret=SIGNING)
    answers: list[httpx.Response] = []

    async def keep(resp: httpx.Response) -> None:
        await resp.aread()
        answers.append(resp)

    admin = {"X-Emulator-Admin-Token": ADMIN}
    emu.client.event_hooks["response"].append(keep)
    emu.client.headers.update(admin)
    ids = await world(emu)
    c = emu.client
    await c.put(f"/v1/webhooks/{ids['webhook']}", json={"secret": NEW_SECRET})
    await c.post(f"/v1/webhooks/{ids['webhook']}/test")
    await c.post("/v1/inference/batch", json={"input_file_base64": b64([chat_line("z")]),
                                              "metadata": {"note": "x"}})  # fmt: skip
    await emu.settle()
    for path in (
        "/_emulator/journal", "/_emulator/state", "/_emulator/verdict", "/_emulator/sink/a",
        f"/_emulator/tenants/{KEY}", f"/_emulator/tenants/{KEY}/scenario",
        f"/v1/webhooks/{ids['webhook']}/deliveries", f"/v1/webhooks/{ids['webhook']}",
        "/v1/webhooks", f"/_emulator/tenants/{ids['tenant']}/batches/{ids['batch']}/lines",
        f"/_emulator/tenants/{ids['tenant']}/webhooks/{ids['webhook']}/deliveries",
    ):  # fmt: skip
        await c.get(path)
    journal = (await c.get("/_emulator/journal")).text  # includes the reads above
    await emu.core.durable.save()  # the journal's summaries as the store keeps them
    async with emu.core.store._db.execute("SELECT entries FROM journal_pages") as cursor:
        saved = b"".join(row[0] for row in await cursor.fetchall())
    secrets = {"key": KEY, "hook secret": HOOK_SECRET, "rotated secret": NEW_SECRET,
               "admin token": ADMIN, "signing secret": SIGNING}  # fmt: skip
    places = {f"{r.request.method} {r.request.url.path}": r.text + str(r.headers) for r in answers}
    server_log = "\n".join(  # (httpx logs the URLs this test's client asks for: not the server)
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != "httpx"
    )
    places |= {"log": server_log, "journal": journal, "saved journal": saved.decode("latin-1")}
    leaks = [f"{name} in {where}" for where, text in places.items()
             for name, secret in secrets.items() if secret in text]  # fmt: skip
    assert not leaks, leaks
    assert len(answers) > 20 and "sgk_" in journal  # the journal shows keys masked, not hidden


async def test_a_fault_on_a_path_that_names_a_key_logs_it_masked(
    emu: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> str:
        raise RuntimeError("a fault")

    monkeypatch.setattr("emulator.control.tenant_path", broken)
    resp = await emu.client.get(f"/_emulator/tenants/{KEY}/batches/b/lines")
    assert_error(resp, 500, "INTERNAL_ERROR")
    [record] = [r for r in caplog.records if r.name == "emulator"]
    assert KEY not in record.getMessage() and "sgk_\u2026" + KEY[-4:] in record.getMessage()


# --- the signing secret ---------------------------------------------------------------------------


async def _results_url(emu: Harness) -> str:
    batch = await emu.submit([chat_line("a")])
    await emu.settle()
    url: str = (await emu.batch(batch["id"]))["results_url"]
    return url


async def test_seeded_runs_mint_the_same_links_unless_a_secret_is_given(make_emu: Any) -> None:
    default_1, default_2 = await make_emu(), await make_emu()
    assert await _results_url(default_1) == await _results_url(default_2)
    mine = await _results_url(await make_emu(signing_secret=SIGNING))
    assert mine != await _results_url(await make_emu())
    assert mine == await _results_url(await make_emu(signing_secret=SIGNING, seed=0))


async def test_a_link_signed_with_another_secret_is_refused(make_emu: Any) -> None:
    """Same seed, same batch id, same path: only the secret differs."""
    signed = await _results_url(await make_emu(signing_secret=SIGNING))
    other = await make_emu(signing_secret="another secret")
    await _results_url(other)
    async with other.client_for(None) as anon:
        assert_error(await anon.get(signed), 403, "RESULTS_URL_INVALID")
    same = await make_emu(signing_secret=SIGNING)
    await _results_url(same)
    async with same.client_for(None) as anon:
        assert (await anon.get(signed)).status_code == 200
    # a reseed changes links from a derived secret, never from a given one
    await same.client.put("/_emulator/seed", json={"seed": 5})
    async with same.client_for(None) as anon:
        assert (await anon.get(signed)).status_code == 200


async def test_the_state_dump_hides_the_secret_settings(make_emu: Any) -> None:
    emu = await make_emu(admin_token=ADMIN, signing_secret=SIGNING)
    settings = (await emu.client.get("/_emulator/state", headers={
        "X-Emulator-Admin-Token": ADMIN})).json()["data"]["settings"]  # fmt: skip
    assert settings["admin_token"] == settings["signing_secret"] == "***"
