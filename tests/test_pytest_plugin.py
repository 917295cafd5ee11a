"""The `scaigrid` fixture, used as a downstream suite uses it: a pytest run over a test file."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import base64, json

LINES = [
    {"custom_id": f"r{i}", "method": "POST", "url": "/v1/inference/chat",
     "body": {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": f"hi {i}"}]}}
    for i in range(4)
]
B64 = base64.b64encode("\\n".join(json.dumps(x) for x in LINES).encode()).decode()


def submit(scaigrid, **body):
    resp = scaigrid.client.post("/v1/inference/batch", json={"input_file_base64": B64, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["id"]


def test_happy_path(scaigrid):
    batch = scaigrid.wait_for(submit(scaigrid), "completed")
    assert batch["completed_count"] == 4
    results = scaigrid.client.get(batch["results_url"]).text.splitlines()
    assert [json.loads(r)["custom_id"] for r in results] == ["r0", "r1", "r2", "r3"]


def test_a_fresh_tenant_per_test(scaigrid):
    listed = scaigrid.client.get("/v1/inference/batch").json()["data"]["items"]
    assert listed == []


def test_scenario_and_clock(scaigrid):
    scaigrid.use_scenario("slow-processing")
    batch_id = submit(scaigrid, endpoint_completion_window="1h")
    assert scaigrid.wait_for(batch_id, "pending")["status"] == "pending"
    scaigrid.advance(hours=1)
    batch = scaigrid.wait_for(batch_id, "completed")
    assert (batch["completed_count"], batch["failed_count"]) == (3, 1)


def test_wait_for_says_when_time_is_needed(scaigrid):
    scaigrid.use_scenario("slow-processing")
    batch_id = submit(scaigrid)
    try:
        scaigrid.wait_for(batch_id, "completed")
    except AssertionError as exc:
        assert "advance the clock" in str(exc)
    else:
        raise AssertionError("expected wait_for to refuse")


def test_sink_gets_signed_events_and_the_retries(scaigrid):
    sink = scaigrid.sink("done", status=503, count=1)
    hook = sink.register(events=["batch.completed"])
    batch_id = submit(scaigrid)
    scaigrid.wait_for(batch_id, "completed")
    scaigrid.advance(30)  # the first post was answered 503: the retry is due 30 s later
    events = sink.events()
    assert [e["payload"]["batch_id"] for e in events] == [batch_id, batch_id]
    assert [i["status"] for i in sink.received()] == [503, 200]
    assert events[0]["event_type"] == "batch.completed"
    other = scaigrid.sink("done", secret="whsec_not-the-one")  # same sink, another secret
    assert other.name == sink.name and not any(i["verified"] for i in other.received())
    try:
        other.events()
    except AssertionError as exc:
        assert "not signed" in str(exc)
    else:
        raise AssertionError("expected a signature mismatch")
    assert scaigrid.client.get(f"/v1/webhooks/{hook['id']}").status_code == 200


def test_journal_is_this_tests_own(scaigrid):
    scaigrid.client.get("/v1/models")
    paths = [e["path"] for e in scaigrid.journal()]
    assert paths == ["/v1/models"]


def test_a_refused_scenario_shows_the_servers_message(scaigrid):
    import httpx
    import pytest

    from emulator.pytest_plugin import EmulatorRefused

    with pytest.raises(EmulatorRefused) as refused:
        scaigrid.use_scenario("no-such-scenario")
    assert "422 VALIDATION_ERROR" in str(refused.value)
    assert "unknown scenario 'no-such-scenario'" in str(refused.value)
    assert isinstance(refused.value, httpx.HTTPStatusError)
    with pytest.raises(EmulatorRefused, match="unknown error code 'BACKEND_EROR'"):
        scaigrid.use_scenario("{faults: [{error: {code: BACKEND_EROR}}]}")


def test_one_line_inline_yaml_is_a_scenario(scaigrid):
    scaigrid.use_scenario("{batch: {fail_input: true}}")
    batch_id = submit(scaigrid)
    assert scaigrid.wait_for(batch_id, "failed")["error"]["code"] == "INPUT_PARSE_ERROR"
    scaigrid.use_scenario("name: plain")
    assert scaigrid.wait_for(submit(scaigrid), "completed")
"""


@pytest.mark.slow
def test_the_fixture_in_a_downstream_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_downstream=SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)


def _readme_example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->` in the README."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    found = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert found, f"README has no example {name!r}"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_examples_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inprocess=_readme_example("inprocess")
        + SUITE.replace("(scaigrid", "(scaigrid_inprocess")
        .replace("scaigrid.", "scaigrid_inprocess.")
        .replace("scaigrid, ", "scaigrid_inprocess, "),
        test_marker=_readme_example("marker"),
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)


@pytest.mark.slow
def test_the_readme_ini_example_runs(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", pytest=_readme_example("ini"))
    pytester.makepyfile(test_ini=_readme_example("ini-test"))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_marker_refusals_name_the_problem(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_refused="""
import pytest

@pytest.mark.scaigrid(sed=1, scenari="x")
def test_misspelled(scaigrid):
    pass

@pytest.mark.scaigrid(clock_start="2026-01-01T00:00:00Z")
def test_clock_start(scaigrid):
    pass

@pytest.mark.scaigrid(tenants=0)
def test_no_tenants(scaigrid):
    pass

@pytest.mark.scaigrid(seed=3)
def test_seed_is_restored_after(scaigrid):
    pass

def test_seed_back(scaigrid):
    assert scaigrid.client.get("/_emulator/seed").json()["data"]["seed"] == 0
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines(["*unknown option(s) scenari, sed (known: seed, scenario*"])
    result.stdout.fnmatch_lines(["*clock_start=...) cannot apply per test*scaigrid_clock_start*"])
    result.stdout.fnmatch_lines(["*tenants must be a whole number >= 1, got 0*"])


@pytest.mark.slow
def test_the_readme_polling_loop_recipe_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_polling=_readme_example("polling"))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


HELPERS = """
import pytest


def test_requests_and_assert_called(scaigrid):
    scaigrid.client.get("/v1/models")
    scaigrid.client.get("/v1/inference/batch/batch_nope")
    scaigrid.client.post("/v1/webhooks", json={"url": "http://x.test/h", "secret": "whsec_zz"})
    [missing] = scaigrid.requests(path="/v1/inference/batch/*")
    assert missing["response"]["json"]["error"]["code"] == "BATCH_NOT_FOUND"
    [hook] = scaigrid.requests(method="POST", status="2xx")
    assert hook["request"]["json"]["secret"] == "[redacted]"
    assert hook["request"]["headers"]["authorization"].startswith("Bearer sgk_\\u2026")
    assert [e["path"] for e in scaigrid.requests(status=404)] == [missing["path"]]
    scaigrid.assert_called("GET", "/v1/models", times=1)
    scaigrid.assert_called("get", "/v1/inference/*")
    with pytest.raises(AssertionError) as info:
        scaigrid.assert_called("GET", "/v1/models", times=2)
    text = str(info.value)
    assert "expected GET /v1/models 2 times, called 1 time" in text
    assert "GET /v1/inference/batch/batch_nope -> 404" in text
    with pytest.raises(AssertionError, match="called 0 times"):
        scaigrid.assert_called("DELETE", "/v1/*")


def test_only_this_tests_requests(scaigrid):
    assert scaigrid.requests() == []
"""


@pytest.mark.slow
def test_requests_and_assert_called(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HELPERS)
    pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=2)


VERDICT = """
import base64
import json

import pytest

BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
LINE = {"custom_id": "r1", "method": "POST", "url": "/v1/inference/chat", "body": BODY}
INPUT = base64.b64encode(json.dumps(LINE).encode()).decode()


def submit(scaigrid):
    resp = scaigrid.client.post("/v1/inference/batch", json={"input_file_base64": INPUT})
    return resp.json()["data"]["id"]


def test_findings_are_reported(scaigrid):
    batch_id = submit(scaigrid)
    scaigrid.advance(0)  # the batch is processed
    for _ in range(3):
        scaigrid.client.get(f"/v1/inference/batch/{batch_id}")
    found = scaigrid.verdict()
    assert [f["check"] for f in found] == ["poll_rate", "results_never_downloaded"]
    assert [f["check"] for f in scaigrid.verdict(min_poll_interval=0)] == [
        "results_never_downloaded"
    ]


@pytest.mark.scaigrid(verdict="strict")
def test_strict_fails_a_bad_client(scaigrid):
    batch_id = submit(scaigrid)
    scaigrid.advance(0)
    for _ in range(3):
        scaigrid.client.get(f"/v1/inference/batch/{batch_id}")


@pytest.mark.scaigrid(verdict="strict", tenants=2)
def test_strict_passes_a_good_client(scaigrid):
    batch = scaigrid.wait_for(submit(scaigrid), "completed")  # the fixture's look: not judged
    assert scaigrid.client.get(batch["results_url"]).status_code == 200


@pytest.mark.scaigrid(verdict="loud")
def test_an_unknown_mode(scaigrid):
    pass
"""


@pytest.mark.slow
def test_the_verdict_from_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_verdict=VERDICT)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_strict_fails_a_bad_client*",
            "*scaigrid verdict (strict): 2 finding(s) on this test's client",
            "*- poll_rate: polled batch_* 3 times; 2 of them came less than 10 s after*",
            "*    20??-??-??T*Z GET /v1/inference/batch/batch_* 200 req_*",
            "*- results_never_downloaded: batch_* completed at *",
        ]
    )
    result.stdout.fnmatch_lines(["*verdict=...): 'loud' is not one of off, strict*"])


@pytest.mark.slow
def test_the_verdict_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", pytest="[pytest]\nscaigrid_verdict = strict\n")
    pytester.makepyfile(
        test_ini="""
def test_a_client_that_repeats_a_404(scaigrid):
    for _ in range(2):
        scaigrid.client.delete("/v1/files/file-nope")
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*- retried_permanent_error: sent DELETE /v1/files/file-nope*"])


@pytest.mark.slow
def test_the_readme_journal_and_verdict_examples_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_journal=_readme_example("journal"), test_verdict=_readme_example("verdict")
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


# --- isolation: a test gets the same ids, faults and instants whatever ran before it ------------

ISOLATED = """
import base64, json, os, pathlib
import pytest

MODELS = ["openai/gpt-4o", "scailabs/poolnoodle-omni", "scailabs/poolnoodle-omni"]
LINES = [
    {"custom_id": f"r{i}", "method": "POST", "url": "/v1/inference/chat",
     "body": {"model": MODELS[i % 3], "messages": [{"role": "user", "content": f"hi {i}"}]}}
    for i in range(60)
]
DATA = "\\n".join(json.dumps(x) for x in LINES).encode()


def submit(scaigrid, **headers):
    body = {"input_file_base64": base64.b64encode(DATA).decode()}
    resp = scaigrid.client.post("/v1/inference/batch", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["id"]


def busy(scaigrid):
    # objects of every kind, one batch run by a clock move, one left pending, the clock moved
    scaigrid.sink("busy").register()
    scaigrid.client.post("/v1/files", files={"file": ("x.jsonl", DATA, "application/jsonl")})
    scaigrid.use_scenario("slow-processing")
    submit(scaigrid, **{"X-Emulator-Scenario": "flaky-backend"})
    submit(scaigrid)
    scaigrid.advance(hours=3)
    submit(scaigrid)
    scaigrid.advance(minutes=7)


def test_busy_1(scaigrid):
    busy(scaigrid)


@pytest.mark.scaigrid(tenants=2)
def test_busy_2(scaigrid):
    for tenant in scaigrid.tenants:
        busy(tenant)


def test_flaky(scaigrid):
    scaigrid.use_scenario("flaky-backend")
    sink = scaigrid.sink("done")
    hook = sink.register(events=["batch.completed"])
    upload = scaigrid.client.post(
        "/v1/files",
        files={"file": ("in.jsonl", DATA, "application/jsonl")},
        # httpx draws a random boundary, which the journal would show: this client's, fixed
        headers={"Content-Type": "multipart/form-data; boundary=isolated-test"},
    ).json()["data"]
    batch_id = submit(scaigrid)
    batch = scaigrid.wait_for(batch_id, "completed")  # and its event delivered, at this instant
    rows = [json.loads(r) for r in scaigrid.client.get(batch["results_url"]).text.splitlines()]
    record = {
        "tenant": scaigrid.tenant_id,
        "ids": [upload["id"], hook["id"], batch_id],
        "faults": {r["custom_id"]: r["error"]["code"] for r in rows if r["status"] == "error"},
        "upload": upload,
        "batch": batch,
        "results": rows,
        "webhook_posts": sink.received(),
        "journal": scaigrid.journal(),
    }
    for post in record["webhook_posts"]:  # signs the body, which names the port: see "verified"
        del post["headers"]["x-scaigrid-signature"]
    host = scaigrid.base_url.removeprefix("http://")  # each run's server has its own port
    text = json.dumps(record, sort_keys=True).replace(host, "HOST")
    pathlib.Path(os.environ["ISOLATION_RECORD"]).write_text(text)


def test_busy_3(scaigrid):
    busy(scaigrid)


def test_busy_4(scaigrid):
    busy(scaigrid)
"""


@pytest.mark.slow
def test_a_test_gets_the_same_faults_ids_and_instants_however_it_is_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    pytester.makeini("[pytest]\nscaigrid_clock_start = 2026-03-01T08:00:00Z\n")
    pytester.makepyfile(test_isolated=ISOLATED)
    runs = {
        "alone": ("test_isolated.py::test_flaky",),
        "after others": ("test_isolated.py",),
        "two workers": ("-n", "2", "test_isolated.py"),
    }
    records = {}
    for name, args in runs.items():
        record = pytester.path / f"{name.replace(' ', '-')}.json"
        monkeypatch.setenv("ISOLATION_RECORD", str(record))
        result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args)
        result.assert_outcomes(passed=1 if name == "alone" else 5)
        records[name] = json.loads(record.read_text())
    alone = records["alone"]
    assert records["after others"] == alone
    assert records["two workers"] == alone
    # and the run was worth comparing: faults of all three kinds, a webhook post, timestamps
    assert set(alone["faults"].values()) == {
        "MODEL_UNAVAILABLE", "BACKEND_TIMEOUT", "BACKEND_ERROR"
    }  # fmt: skip
    assert alone["batch"]["created_at"] == "2026-03-01T08:00:00.000Z"
    assert alone["batch"]["completed_at"] == "2026-03-01T08:00:00.000Z"
    assert len(alone["webhook_posts"]) == 1


LEFTOVERS = """
import base64, json
import httpx
import pytest

LEFT = {}
LINE = {"custom_id": "a", "method": "POST", "url": "/v1/inference/chat",
        "body": {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}


def test_leaves_work_behind(scaigrid):
    LEFT["start"] = scaigrid.now()
    LEFT["key"] = scaigrid.api_key
    sink = scaigrid.sink("left")
    sink.register()
    LEFT["sink"] = sink.name
    body = {"input_file_base64": base64.b64encode(json.dumps(LINE).encode()).decode()}
    headers = {"X-Emulator-Scenario": "slow-processing"}  # starts after 30 minutes
    resp = scaigrid.client.post("/v1/inference/batch", json=body, headers=headers)
    LEFT["batch"] = resp.json()["data"]["id"]
    scaigrid.advance(minutes=10)
    scaigrid.client.put("/_emulator/clock", json={"mode": "scaled", "scale": 60})
    assert scaigrid.client.get(f"/v1/inference/batch/{LEFT['batch']}").json()["data"][
        "status"] == "pending"


def test_the_next_test_starts_at_the_session_start_and_never_runs_it(scaigrid):
    clock = scaigrid.client.get("/_emulator/clock").json()["data"]
    assert (clock["now"], clock["mode"]) == (LEFT["start"], "frozen")
    scaigrid.advance(hours=2)  # the leftover batch would have run by now
    state = scaigrid.client.get("/_emulator/state").json()["data"]
    assert state["batches"] == [] and state["files"] == [] and state["webhooks"] == []
    received = scaigrid.client.get(f"/_emulator/sink/{LEFT['sink']}").json()["data"]
    assert received == {"items": []}  # so its event was never made


def test_without_the_fixture_moves_the_clock(scaigrid_server):
    server = scaigrid_server
    with httpx.Client(base_url=server.base_url, transport=server.transport) as control:
        assert control.post("/_emulator/clock/advance", json={"hours": 1}).status_code == 200


def test_after_it_the_clock_is_back_at_the_start(scaigrid):
    assert scaigrid.now() == LEFT["start"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["scaigrid", "scaigrid_inprocess"])
def test_leftovers_and_clock_moves_stay_in_their_test(
    pytester: pytest.Pytester, fixture: str
) -> None:
    suite = LEFTOVERS
    if fixture == "scaigrid_inprocess":
        suite = (
            suite.replace("(scaigrid)", "(scaigrid_inprocess)")
            .replace("scaigrid.", "scaigrid_inprocess.")
            .replace("scaigrid_server", "scaigrid_inprocess_server")
        )
    pytester.makepyfile(test_leftovers=suite)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


@pytest.mark.slow
def test_work_of_a_tenant_no_fixture_owns_fails_the_test_that_left_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_foreign="""
import base64, json
import httpx

LINE = {"custom_id": "a", "method": "POST", "url": "/v1/inference/chat",
        "body": {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}
KEY = "sgk_of_my_own_" + "k" * 32


def test_leaves_a_batch_of_its_own_key_pending(scaigrid):
    body = {"input_file_base64": base64.b64encode(json.dumps(LINE).encode()).decode()}
    headers = {"Authorization": f"Bearer {KEY}", "X-Emulator-Scenario": "slow-processing"}
    assert scaigrid.client.post("/v1/inference/batch", json=body, headers=headers).is_success
    scaigrid.advance(60)
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*POST /_emulator/reset answered 409 CLOCK_IN_USE: Cannot put the clock at *"
         "other tenants have work in progress*tenant_*(1 batch(es) pending or processing*"]
    )  # fmt: skip
