"""API fuzzing: schemathesis makes requests for every operation of the emulator's own
`/openapi.json` (native, OpenAI-compatible and control routes): its coverage cases (each
parameter's and body field's boundaries, wrong types, missing and extra parts, as its `run`
command's coverage phase does) and random ones (hypothesis), valid and invalid. Each answer must be
no server error, a status the document lists for the operation, and a body its schema accepts.
Then one regression test for each fault it found.

The requests go over a real socket to uvicorn, with an API key and the admin token, so they reach
past authentication. `FUZZ_EXAMPLES` (cases per operation and mode) runs it longer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from conftest import KEY, Harness, assert_error
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from emulator.clock import LAST_INSTANT
from emulator.pytest_plugin import EmulatorServer
from emulator.settings import Settings

ADMIN = "fuzz-admin"
#: random cases per operation: valid ones, and ones that break the document (fewer: many
#: operations have little to break); the coverage cases come on top (about 2,300 in all)
EXAMPLES = {
    GenerationMode.POSITIVE: int(os.environ.get("FUZZ_EXAMPLES", "8")),
    GenerationMode.NEGATIVE: int(os.environ.get("FUZZ_EXAMPLES", "4")),
}
LEAST_CASES = 2500
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
SINK = "POST /_emulator/sink/{name}"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(Settings(db=":memory:", clock="frozen", admin_token=ADMIN))
    srv.start()
    yield srv
    srv.stop()


def _asked_failure(label: str, case: Any) -> int | None:
    """The 5xx a case asks the built-in webhook receiver to answer with (its purpose: a sender
    under test sees failures on demand), or None."""
    asked = (case.query or {}).get("status") if label == SINK else None
    return asked if isinstance(asked, int) and asked >= 500 else None


def _fuzz(op: Any, mode: GenerationMode, base_url: str, session: requests.Session) -> tuple:
    """Run one operation's cases in one mode: (cases run, failures as text)."""
    ran: list[int] = []
    failures: list[str] = []

    @given(op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,  # the same cases on every run
        deadline=None,
        database=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        ran.append(1)
        failure = _check(op.label, case, base_url, session)
        if failure is not None:
            failures.append(f"{op.label} [{mode.value}]: {failure}")

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid
        pass
    return len(ran), failures


def _cover(schema: Any, op: Any, base_url: str, session: requests.Session) -> tuple:
    """Run one operation's coverage cases: (cases run, failures as text)."""
    ran, failures = 0, []
    config = schema.config.generation_for(operation=op)
    for case in schema.iter_coverage_cases(op, generation_modes=list(EXAMPLES),
                                           generation_config=config):  # fmt: skip
        ran += 1
        failure = _check(op.label, case, base_url, session)
        if failure is not None:
            failures.append(f"{op.label} [coverage]: {failure}")
    return ran, failures


def _check(label: str, case: Any, base_url: str, session: requests.Session) -> str | None:
    """Send one case and check its answer: the failure as text, or None."""
    asked = _asked_failure(label, case)
    try:
        if asked is not None:
            resp = case.call(base_url=base_url, session=session, timeout=10)
            assert resp.status_code in (asked, 422), resp.status_code
            return None
        # a timeout is a hang: no answer in 10 s fails the case
        case.call_and_validate(base_url=base_url, session=session, timeout=10, checks=CHECKS)
    except (Exception, BaseExceptionGroup) as exc:  # every failure collected and reported
        return str(exc)[:2000]
    return None


@pytest.mark.slow
def test_generated_requests_get_documented_answers(server: EmulatorServer) -> None:
    document = httpx.get(server.base_url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {KEY}", "X-Emulator-Admin-Token": ADMIN})
    total, failures = 0, []
    for op in operations:
        ran, found = _cover(schema, op, server.base_url, session)
        total += ran
        failures += found
        for mode in EXAMPLES:
            ran, found = _fuzz(op, mode, server.base_url, session)
            total += ran
            failures += found
    session.close()
    assert not failures, "\n\n".join(failures[:10])
    assert total >= LEAST_CASES, f"only {total} cases over {len(operations)} operations"
    print(f"{total} cases over {len(operations)} operations")  # shown with -s
    # and the server still answers
    assert httpx.get(server.base_url + "/health").status_code == 200


# --- what the fuzzer found ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/inference/images/abc.png", "/v1/inference/batch/x/results"])
async def test_a_signature_with_non_ascii_characters_is_an_invalid_link(
    emu: Harness, path: str
) -> None:
    """hmac.compare_digest raises on non-ASCII text: it was a 500."""
    resp = await emu.client.get(path, params={"expires": "99999999999999", "signature": "é"})
    assert_error(resp, 403, "RESULTS_URL_INVALID")


async def test_a_huge_clock_scale_stops_the_clock_at_the_last_instant(make_emu: Any) -> None:
    """A scaled clock ran past year 9999 at once, and every answer after (their `Date` header)
    was a 500. It now stops at the last instant a timestamp can be written for."""
    emu = await make_emu(clock="real")
    resp = await emu.client.put("/_emulator/clock", json={"scale": 1e300})
    assert resp.status_code == 200, resp.text
    assert emu.core.clock.now() == LAST_INSTANT
    clock = (await emu.client.get("/_emulator/clock")).json()["data"]
    assert clock["now"] == "9999-12-31T23:59:59.000Z"
    assert (await emu.client.get("/v1/models")).status_code == 200


async def test_a_clock_start_past_year_9999_is_refused(emu: Harness) -> None:
    """9999-12-31T23:59:59-01:00 is an hour into year 10000."""
    resp = await emu.client.put("/_emulator/clock", json={"start": "9999-12-31T23:59:59-01:00"})
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == "start"
    assert (await emu.client.get("/_emulator/clock")).status_code == 200


async def test_years_before_1000_are_written_with_four_digits(emu: Harness) -> None:
    """strftime wrote the year 51 as "51", which is not ISO-8601."""
    resp = await emu.client.post("/_emulator/reset", json={"clock": "0051-01-22T00:19:59.5Z"})
    assert resp.json()["data"]["clock"]["now"] == "0051-01-22T00:19:59.500Z"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/_emulator/verdict", {"rate_limit": str(2**64)}),  # orjson cannot write it: was a 500
        ("/_emulator/verdict", {"min_poll_interval": "inf"}),  # answered as null
        ("/_emulator/verdict", {"min_poll_interval": "1e999"}),
        ("/_emulator/journal", {"limit": str(2**63)}),
        ("/_emulator/tenants/t/batches/b/lines", {"offset": str(2**63)}),  # SQLite cannot hold it
    ],
)
async def test_numbers_no_answer_or_store_can_hold_are_refused(
    emu: Harness, path: str, query: dict[str, str]
) -> None:
    resp = await emu.client.get(path, params=query)
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == next(iter(query))


async def test_a_sink_cannot_be_asked_for_an_informational_status(emu: Harness) -> None:
    """A 1xx is not an answer: the client would wait on for the real one."""
    resp = await emu.client.post("/_emulator/sink/s", params={"status": "150"}, content=b"{}")
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == "status"
    resp = await emu.client.post("/_emulator/sink/s", params={"status": "200"}, content=b"{}")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/inference/batch", {"input_file_base64": "", "endpoint_completion_window": {}},
         "endpoint_completion_window"),
        ("/oai/v1/batches", {"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                             "completion_window": ["24h"]}, "completion_window"),
        ("/oai/v1/batches", {"input_file_id": "file-x", "endpoint": ["/v1/chat/completions"],
                             "completion_window": "24h"}, "endpoint"),
        ("/v1/webhooks", {"url": "https://hooks.test/h", "events": [{}], "secret": "s" * 32},
         "events[0]"),
    ],
)  # fmt: skip
async def test_a_list_or_object_where_a_name_goes_is_refused(
    emu: Harness, path: str, body: dict[str, Any], field: str
) -> None:
    """Looked up in a table of names, a list or an object raised TypeError (unhashable): a 500."""
    resp = await emu.client.post(path, json=body)
    if path.startswith("/oai/"):
        assert resp.status_code == 400 and resp.json()["error"]["param"] == field, resp.text
    else:
        assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == field


@pytest.mark.parametrize("url", ["https://\u00cf", "https://hooks.test/a b", "https://h.test/\x01"])
async def test_a_webhook_url_with_characters_no_url_has_is_refused(emu: Harness, url: str) -> None:
    """It was stored and shown back, though no URI holds such characters."""
    body = {"url": url, "events": ["batch.completed"], "secret": "s" * 32}
    resp = await emu.client.post("/v1/webhooks", json=body)
    assert assert_error(resp, 422, "VALIDATION_ERROR")["details"][0]["field"] == "url"
