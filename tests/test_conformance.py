"""The conformance suite: every check passes against the emulator (with writes, the clock moved
through the control plane while a batch is awaited), a read-only run sends only GETs, a broken
endpoint fails the right checks with the evidence, and the command's exit codes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import KEY, Harness
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_serve import _env, _start

from emulator import cli
from emulator.conformance import runner as suite
from emulator.conformance.checks import CHECKS
from emulator.conformance.options import Options
from emulator.conformance.probe import Probe, ReadOnly

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
#: a batch waits 30 s to start and takes 10 s a request: polling sees every status on the way
SLOW = "{processing: {start_delay: 30s, latency: 10s}}"


@pytest.fixture
async def delivering(emu: Harness) -> AsyncIterator[Harness]:
    """The emulator, its webhook deliveries going out over loopback (to the suite's receiver)
    instead of into the in-process app."""
    async with httpx.AsyncClient() as outbound:
        emu.core.sender.use(outbound)
        yield emu


async def _run(emu: Harness, **options: Any) -> list[suite.Outcome]:
    async def sleep(seconds: float) -> None:  # the emulator's clock moves; the test never waits
        resp = await emu.client.post("/_emulator/clock/advance", json={"seconds": seconds})
        assert resp.status_code == 200, resp.text

    transport = httpx.ASGITransport(emu.app)
    async with suite.client_for("http://emulator.test", KEY, transport) as client:
        return await suite.run(client, Options(**options), sleep=sleep)


def _by_name(outcomes: list[suite.Outcome]) -> dict[str, suite.Outcome]:
    return {o.name: o for o in outcomes}


async def test_every_check_passes_against_the_emulator(delivering: Harness) -> None:
    resp = await delivering.client.put(f"/_emulator/tenants/{KEY}/scenario", json={"yaml": SLOW})
    assert resp.status_code == 200, resp.text
    outcomes = await _run(delivering, writes=True)
    failed = [f"{o.name}: {o.detail} {o.evidence}" for o in outcomes if o.verdict != "PASS"]
    assert failed == []
    assert [o.name for o in outcomes] == [c.name for c in CHECKS]
    seen = _by_name(outcomes)
    assert seen["statuses"].detail == "pending -> processing -> completed; counts 1+0"
    assert "an active one: cancelled" in seen["cancel"].detail
    assert "altered link 403 RESULTS_URL_INVALID" in seen["results"].detail
    # the evidence names each request and what its answer showed
    assert "GET /v1/inference/batch/batch_conformance0missing -> 404 BATCH_NOT_FOUND" in (
        " ".join(seen["not-found-codes"].evidence)
    )
    assert suite.exit_code(outcomes) == 0
    # what the checks made and could delete is gone: the uploaded file (the batches' inputs
    # stay, as their batches do) and the webhooks
    files = (await delivering.client.get("/v1/files")).json()["data"]["items"]
    assert {f["filename"] for f in files} == {"input.jsonl"}
    assert (await delivering.client.get("/v1/webhooks")).json()["data"]["items"] == []


async def test_a_read_only_run_sends_only_gets(emu: Harness) -> None:
    outcomes = await _run(emu)
    by_verdict = {o.name: o.verdict for o in outcomes}
    assert by_verdict == {c.name: "SKIP" if c.writes else "PASS" for c in CHECKS}
    assert {o.detail for o in outcomes if o.writes} == {"needs --allow-writes"}
    methods = {e["method"] for e in emu.core.journal.entries()}
    assert methods == {"GET"}


async def test_a_check_not_declared_writing_cannot_write(emu: Harness) -> None:
    probe = Probe(emu.client, Options(writes=False), sleep=lambda s: _never())
    with pytest.raises(ReadOnly):
        await probe.post("/v1/files")
    assert emu.core.journal.entries() == []  # refused before anything was sent


async def _never() -> None:
    raise AssertionError("a read-only run never waits")


# --- a broken endpoint ----------------------------------------------------------------------------


async def _broken_models(request: Request) -> JSONResponse:
    """A list without the envelope; a key is not even looked at."""
    return JSONResponse({"data": [{"slug": "acme/model", "modality": "chat"}]})


async def _broken_missing(request: Request) -> JSONResponse:
    return JSONResponse({"error": "not found"}, status_code=404)


BROKEN = Starlette(
    routes=[
        Route("/v1/models", _broken_models),
        Route("/{path:path}", _broken_missing, methods=["GET", "POST", "DELETE"]),
    ]
)


async def test_a_broken_endpoint_fails_the_right_checks_with_evidence() -> None:
    transport = httpx.ASGITransport(BROKEN)
    async with suite.client_for("http://broken.test", KEY, transport) as client:
        outcomes = _by_name(await suite.run(client, Options()))
    verdicts = {name: o.verdict for name, o in outcomes.items()}
    assert verdicts == {
        **{c.name: "SKIP" for c in CHECKS if c.writes},
        "envelope": "FAIL",
        "auth-codes": "FAIL",
        "request-id-header": "FAIL",
        "not-found-codes": "FAIL",
        "pagination": "FAIL",
        "model-object": "FAIL",
        "pricing": "FAIL",
        "rate-limit-headers": "PASS",  # none sent, which is allowed
    }
    envelope = outcomes["envelope"]
    assert envelope.expected is not None and "list envelope" in envelope.expected
    assert envelope.got == "{data}"
    assert envelope.evidence == ["GET /v1/models -> 200 {data}"]
    auth = outcomes["auth-codes"]
    assert auth.detail == "expected 401 AUTH_TOKEN_MISSING, got 200 {data}"
    missing = outcomes["not-found-codes"]
    assert missing.expected == "404 BATCH_NOT_FOUND"
    assert missing.got == "404 {error}"
    assert missing.evidence == ["GET /v1/inference/batch/batch_conformance0missing -> 404 {error}"]
    text = suite.render_text(list(outcomes.values()))
    assert "FAIL auth-codes — expected 401 AUTH_TOKEN_MISSING, got 200 {data}\n" in text
    assert "\n    GET /v1/models -> 200 {data}\n" in text
    assert text.endswith("1 passed, 7 failed, 14 skipped (checks that create data or cost money "
                         "need --allow-writes)")  # fmt: skip
    assert suite.exit_code(list(outcomes.values())) == 1
    doc = orjson.loads(suite.render_json("http://broken.test", list(outcomes.values())))
    assert doc["summary"] == {"pass": 1, "fail": 7, "skip": 14}
    assert doc["checks"][0]["evidence"] == ["GET /v1/models -> 200 {data}"]


async def test_an_error_answer_is_shown_as_the_servers_code_and_message(emu: Harness) -> None:
    resp = await emu.client.put(
        "/_emulator/scenario",
        json={"yaml": "{api_faults: [{match: {route: /v1/models}, error: {code: BACKEND_ERROR}}]}"},
    )
    assert resp.status_code == 200, resp.text
    [outcome] = [o for o in await _run(emu) if o.name == "model-object"]
    assert outcome.detail == "expected HTTP 200, got 502 BACKEND_ERROR 'Injected BACKEND_ERROR.'"


# --- the command ----------------------------------------------------------------------------------


def _free_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        ([], {}, "--api-key (or SCAIGRID_API_KEY) is required"),
        (["--only", "envelopes"], {"SCAIGRID_API_KEY": KEY}, "unknown check 'envelopes' (known: "),
        (["--api-key", KEY], {}, "cannot reach http://127.0.0.1:"),
        (["--api-key", KEY, "--base-url", "http://127.0.0.1:99999"], {}, "out of range"),
        (["--api-key", KEY, "--base-url", "scaigrid"], {}, "not an http:// or https:// URL"),
        (
            [
                "--api-key",
                KEY,
                "--allow-writes",
                "--receiver-port",
                "{busy}",
                "--only",
                "webhook-objects",
            ],
            {},
            "the webhook receiver cannot listen: Address already in use",
        ),
    ],
    ids=["no-key", "unknown-check", "unreachable", "bad-port", "not-a-url", "receiver-port"],
)
def test_usage_and_connection_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], says: str
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        argv = [arg.replace("{busy}", str(busy.getsockname()[1])) for arg in argv]
        base = f"http://127.0.0.1:{_free_port()}"
        assert cli.main(["conformance", "--base-url", base, *argv], env=env) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("scaigrid-emulator: error: ") and says in err
    assert "Traceback" not in err


def test_every_check_is_a_row_of_the_assumptions_table() -> None:
    table = README[README.index("| id | topic |") :]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.MULTILINE)
    assert len(rows) == len(set(rows))
    assert {c.name for c in CHECKS} <= set(rows)


def test_the_readme_lists_every_check() -> None:
    section = README[README.index("## Conformance") : README.index("## What is real")]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \| (yes|no) \| (.+) \|$", section, re.MULTILINE)
    assert listed == [(c.name, "yes" if c.writes else "no", c.about) for c in CHECKS]


@pytest.mark.slow
def test_the_command_against_a_served_emulator(tmp_path: Path) -> None:
    """The CLI as a user runs it, against `serve` as a user runs it: all pass with writes (the
    batches finish at once on the happy path, so polling never waits: --poll-interval 0), and a
    fault put in force through the control plane fails the checks it breaks, exit 1."""
    server = _start(tmp_path)
    try:
        command = [sys.executable, "-m", "emulator", "conformance", "--base-url", server.base_url]

        def conformance(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*command, *args], capture_output=True, text=True, env={**_env(),
                "SCAIGRID_API_KEY": KEY}, timeout=120, check=False,
            )  # fmt: skip

        done = conformance("--allow-writes", "--poll-interval", "0")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert [line.split(" ", 2)[:2] for line in lines[:-1]] == [["PASS", c.name] for c in CHECKS]
        assert lines[-1] == f"{len(CHECKS)} passed, 0 failed, 0 skipped"

        fault = "{api_faults: [{match: {route: /v1/models}, error: {code: BACKEND_ERROR}}]}"
        with httpx.Client(base_url=server.base_url) as control:
            assert control.put("/_emulator/scenario", json={"yaml": fault}).status_code == 200
        done = conformance("--only", "not-found-codes", "--only", "envelope", "--json")
        assert done.returncode == 1, done.stderr
        report = orjson.loads(done.stdout)
        assert [(c["name"], c["verdict"]) for c in report["checks"]] == [
            ("envelope", "FAIL"),  # table order, whatever the order of --only
            ("not-found-codes", "PASS"),  # the fault is on the list route only
        ]
        assert report["checks"][0]["got"] == "502 BACKEND_ERROR 'Injected BACKEND_ERROR.'"
        assert done.stderr == ""
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=10)
        if server.proc.stdout is not None:
            server.proc.stdout.close()
