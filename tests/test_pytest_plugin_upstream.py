"""The plugin's upstream and replay ini options, as a downstream suite uses them: a pytest run
records its answers from an upstream (the stand-in, on loopback) into a tape folder kept with the
suite, then a run with no upstream replays the tape, a request it does not hold failing with
`REPLAY_MISS`; a bad value stops the run with a usage error naming the option."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from standin_upstream import StandIn

pytest_plugins = ["pytester"]

SUITE = """
import base64, json

MODEL = "scailabs/poolnoodle-omni"


def chat(text):
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def test_a_live_call(scaigrid):
    resp = scaigrid.client.post("/v1/inference/chat", json=chat("hello tape"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()["data"]
    assert answer["choices"][0]["message"]["content"] == "echo: hello tape"
    assert answer["model"] == MODEL and answer["usage"]["total_tokens"] == 16


def test_a_batch_line(scaigrid):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/inference/chat",
            "body": chat("a batch line")}
    encoded = base64.b64encode(json.dumps(line).encode()).decode()
    resp = scaigrid.client.post("/v1/inference/batch", json={"input_file_base64": encoded})
    assert resp.status_code == 200, resp.text
    batch = scaigrid.wait_for(resp.json()["data"]["id"], "completed")
    [result] = [json.loads(r) for r in scaigrid.client.get(batch["results_url"]).text.splitlines()]
    assert result["response"]["choices"][0]["message"]["content"] == "echo: a batch line"
"""

MISS = """
import base64, json

def test_a_request_the_tape_does_not_hold(scaigrid):
    body = {"model": "scailabs/poolnoodle-omni",
            "messages": [{"role": "user", "content": "never recorded"}]}
    resp = scaigrid.client.post("/v1/inference/chat", json=body)
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "REPLAY_MISS"


def test_a_batch_line_the_tape_does_not_hold(scaigrid):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/inference/chat",
            "body": {"model": "scailabs/poolnoodle-omni",
                     "messages": [{"role": "user", "content": "never recorded"}]}}
    encoded = base64.b64encode(json.dumps(line).encode()).decode()
    resp = scaigrid.client.post("/v1/inference/batch", json={"input_file_base64": encoded})
    batch = scaigrid.wait_for(resp.json()["data"]["id"], "completed")
    assert (batch["completed_count"], batch["failed_count"]) == (0, 1)
    [result] = [json.loads(r) for r in scaigrid.client.get(batch["results_url"]).text.splitlines()]
    assert result["error"]["code"] == "REPLAY_MISS"
"""


def readme_ini() -> str:
    """What a suite commits (the README's `ini-replay` example): its tape replayed, a request
    not on it an error, and the model map it was recorded under."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: ini-replay -->\n```ini\n(.*?)```", text, re.S)
    assert found, "README has no example 'ini-replay'"
    return found.group(1)


async def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A pytest run of the suite in `suite/`, its ini file there, from the folder above: the
    event loop keeps serving the stand-in meanwhile."""
    return await asyncio.to_thread(
        pytester.runpytest_subprocess, "-q", "-p", "no:cacheprovider", "-c", "suite/pytest.ini",
        *args, "suite",
    )  # fmt: skip


def suite(pytester: pytest.Pytester, ini: str, **files: str) -> Path:
    folder = pytester.mkdir("suite") if not (pytester.path / "suite").is_dir() else None
    folder = folder or pytester.path / "suite"
    (folder / "pytest.ini").write_text(ini)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return folder


async def test_record_from_the_upstream_then_replay_without_it(
    pytester: pytest.Pytester, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCAIGRID_EMULATOR_UPSTREAM_KEY", "key-from-the-environment")
    folder = suite(pytester, readme_ini(), test_tape=SUITE)
    # once, locally: the same run against a real model, growing the tape as it meets requests
    recording = ("-o", f"scaigrid_upstream={standin.url}", "-o", "scaigrid_record=tests/tape")
    (await run(pytester, *recording, "-o", "scaigrid_replay_miss=upstream")).assert_outcomes(
        passed=2
    )
    assert sorted(s.body["messages"][0]["content"] for s in standin.seen) == [
        "a batch line",
        "hello tape",
    ]
    assert {s.body["model"] for s in standin.seen} == {"llama3.2:1b"}
    assert {s.headers["authorization"] for s in standin.seen} == {"Bearer key-from-the-environment"}
    tape = folder / "tests" / "tape"  # the ini file's folder, not the folder pytest ran from
    assert len(list(tape.iterdir())) == 2
    assert not (pytester.path / "tests").exists()

    suite(pytester, readme_ini(), test_miss=MISS)  # in CI: no upstream at all
    replayed = await run(pytester)
    replayed.assert_outcomes(passed=4)
    assert standin.calls == 2  # the upstream was never asked again
    assert len(list(tape.iterdir())) == 2


async def test_an_ini_key_and_a_miss_sent_upstream_grow_the_tape(
    pytester: pytest.Pytester, standin: StandIn, tmp_path: Path
) -> None:
    tape = tmp_path / "elsewhere"  # an absolute folder stays as it is
    tape.mkdir()
    ini = (
        f"[pytest]\nscaigrid_upstream = {standin.url}\nscaigrid_upstream_key = from-the-ini\n"
        f"scaigrid_replay = {tape}\nscaigrid_record = {tape}\nscaigrid_replay_miss = upstream\n"
    )
    suite(pytester, ini, test_tape=SUITE)
    (await run(pytester)).assert_outcomes(passed=2)
    (await run(pytester)).assert_outcomes(passed=2)
    assert standin.calls == 2 and len(list(tape.iterdir())) == 2
    assert {s.headers["authorization"] for s in standin.seen} == {"Bearer from-the-ini"}


@pytest.mark.parametrize(
    ("ini", "said"),
    [
        (
            "scaigrid_replay_miss = maybe",
            "ini option scaigrid_replay_miss: 'maybe': must be error, fake or upstream",
        ),
        (
            "scaigrid_upstream = localhost:8000",
            "ini option scaigrid_upstream: 'localhost:8000': must be an http:// or https:// URL",
        ),
        (
            "scaigrid_upstream_model_map = small",
            "ini option scaigrid_upstream_model_map: 'small': 'small' is not ours=theirs",
        ),
        (
            "scaigrid_record = tape",
            "the scaigrid ini options: scaigrid_record needs scaigrid_upstream",
        ),
        ("scaigrid_replay = no-tape", "scaigrid_replay {suite}/no-tape: no such folder"),
    ],
)
async def test_a_bad_value_is_a_usage_error_naming_the_option(
    pytester: pytest.Pytester, ini: str, said: str
) -> None:
    folder = suite(pytester, f"[pytest]\n{ini}\n", test_tape=SUITE)
    result = await run(pytester, "-x")
    assert said.format(suite=folder) in result.stdout.str()
    result.assert_outcomes(errors=1)
