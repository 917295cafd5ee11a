"""The scenario language and what scenarios do: per-request faults, canned responses, batch
outcomes, API faults, quotas, rate limits, and which scenario is in force (batch > tenant >
global)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import KEY, OTHER_KEY, Harness, b64, chat_line, embed_line, jsonl, key

from emulator import cli
from emulator.errors import ERROR_CODES
from emulator.scenario.checks import duration_seconds
from emulator.scenario.model import parse_scenario
from emulator.scenario.schema import ScenarioError
from emulator.tenancy import open_tenant_id

MakeEmu = Callable[..., Awaitable[Harness]]
TENANT = open_tenant_id(KEY)
BATCH = "/v1/inference/batch"
CHAT = "/v1/inference/chat"
MODELS = "/v1/models"


def error_of(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "error" and body["error"]["code"] == code, body
    assert body["meta"]["request_id"] == resp.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    return error


async def use_tenant_scenario(h: Harness, text: str, tenant: str = TENANT) -> None:
    resp = await h.client.put(f"/_emulator/tenants/{tenant}/scenario", json={"yaml": text})
    assert resp.status_code == 200, resp.text


async def run_batch(
    h: Harness,
    lines: list[Any],
    scenario: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submit (under `scenario` as the tenant's, if given), let it finish; (batch, results)."""
    if scenario is not None:
        await use_tenant_scenario(h, scenario)
    batch = await h.submit(lines, client=client)
    await h.advance(48 * 3600)
    done = await h.batch(batch["id"], client=client)
    if not done["results_url"]:
        return done, []
    async with h.client_for(None) as anon:
        resp = await anon.get(done["results_url"])
    assert resp.status_code == 200, resp.text
    return done, [orjson.loads(line) for line in resp.content.splitlines()]


def failing(results: list[dict[str, Any]], code: str | None = None) -> list[str]:
    return [
        r["custom_id"]
        for r in results
        if r["status"] == "error" and (code is None or r["error"]["code"] == code)
    ]


def chat_body(content: str = "Hello", model: str = "scailabs/poolnoodle-omni", **kw: Any) -> Any:
    return chat_line("live", content, model=model, **kw)["body"]


# --- the language: errors name the source, the path and the line -------------------------------

BAD_DOCUMENTS = [
    ("unknown top-level key", "name: x\ncolour: red\n", "colour", 2, "unknown key 'colour'"),
    (
        "unknown nested key",
        "faults:\n  - match: {custom_id: a, colour: red}\n    error: {code: BACKEND_ERROR}\n",
        "faults[0].match.colour",
        2,
        "unknown key 'colour'",
    ),
    (
        "every below 1",
        "faults:\n  - error: {code: BACKEND_ERROR}\n  - match:\n      every: 0\n"
        "    error: {code: BACKEND_ERROR}\n",
        "faults[1].match.every",
        4,
        "integer >= 1",
    ),
    (
        "string for concurrency",
        'processing:\n  concurrency: "4"\n',
        "processing.concurrency",
        2,
        "integer",
    ),
    (
        "float for concurrency",
        "processing:\n  concurrency: 2.5\n",
        "processing.concurrency",
        2,
        "integer",
    ),
    (
        "probability 1.5",
        "faults:\n  - match: {probability: 1.5}\n    error: {code: BACKEND_ERROR}\n",
        "faults[0].match.probability",
        2,
        "from 0 to 1",
    ),
    (
        "probability nan",
        "faults:\n  - match: {probability: .nan}\n    error: {code: BACKEND_ERROR}\n",
        "faults[0].match.probability",
        2,
        "number",
    ),
    ("bad duration", "processing:\n  latency: fast\n", "processing.latency", 2, "duration"),
    (
        "negative duration",
        "processing:\n  start_delay: -5s\n",
        "processing.start_delay",
        2,
        "duration",
    ),
    (
        "negative seconds",
        "processing:\n  start_delay: -5\n",
        "processing.start_delay",
        2,
        "duration",
    ),
    ("infinite duration", "batch:\n  window: .inf\n", "batch.window", 2, "duration"),
    (
        "bad regex",
        'faults:\n  - match: {custom_id_regex: "req-("}\n    error: {code: BACKEND_ERROR}\n',
        "faults[0].match.custom_id_regex",
        2,
        "regular expression",
    ),
    (
        "lower-case error code",
        "faults:\n  - error:\n      code: backend_error\n",
        "faults[0].error.code",
        3,
        "UPPER_SNAKE_CASE",
    ),
    (
        "status 200",
        "faults:\n  - error: {code: BACKEND_ERROR, status: 200}\n",
        "faults[0].error.status",
        2,
        "400 to 599",
    ),
    ("list expected", "faults:\n  match: {every: 2}\n", "faults", 2, "must be a list"),
    ("mapping expected", "processing: fast\n", "processing", 1, "must be a mapping"),
    ("not a mapping at all", "- a\n- b\n", "", 1, "must be a mapping"),
    ("duplicate key", "name: a\ndescription: b\nname: c\n", "name", 3, "given twice"),
    (
        "duplicate nested key",
        "processing:\n  concurrency: 2\n  concurrency: 3\n",
        "processing.concurrency",
        3,
        "given twice",
    ),
    ("name not a string", "name: 12\n", "name", 1, "string"),
    ("missing error", "faults:\n  - match: {line: 3}\n", "faults[0]", 2, "'error'"),
    ("missing response", "canned:\n  - match: {content: hi}\n", "canned[0]", 2, "'response'"),
    (
        "bad item in a line list",
        "faults:\n  - match: {line: [1, x]}\n    error: {code: BACKEND_ERROR}\n",
        "faults[0].match.line[1]",
        2,
        "integer >= 1",
    ),
    (
        "unknown method",
        "api_faults:\n  - match: {method: FETCH}\n",
        "api_faults[0].match.method",
        2,
        "one of GET",
    ),
    ("unknown scope", "rate_limit:\n  scope: user\n", "rate_limit.scope", 2, "key, tenant"),
    ("unknown limit", "limits:\n  max_batches: 1\n", "limits.max_batches", 2, "unknown key"),
    ("negative seed", "seed: -1\n", "seed", 1, "integer >= 0"),
    ("negative cancel_after", "batch:\n  cancel_after: -1\n", "batch.cancel_after", 2, ">= 0"),
    (
        "unknown distribution",
        "processing:\n  latency:\n    distribution: gamma\n    mean: 1s\n",
        "processing.latency.distribution",
        3,
        "one of fixed",
    ),
    (
        "distribution without its parameters",
        "processing:\n  latency: {distribution: uniform, min: 1s}\n",
        "processing.latency",
        2,
        "'max'",
    ),
    (
        "normal without stddev",
        "processing:\n  latency:\n    distribution: normal\n    mean: 1s\n",
        "processing.latency",
        3,
        "'stddev'",
    ),
    (
        "parameter of another distribution",
        "processing:\n  latency: {distribution: exponential, mean: 2s, median: 1s}\n",
        "processing.latency.median",
        2,
        "exponential",
    ),
    (
        "unknown webhook rule",
        "name: x\nwebhooks:\n  duplicates: 2\n",
        "webhooks.duplicates",
        3,
        "unknown key 'duplicates'",
    ),
    (
        "webhook probability above 1",
        "webhooks:\n  duplicate: {probability: 1.5}\n",
        "webhooks.duplicate.probability",
        2,
        "from 0 to 1",
    ),
    (
        "delay without its duration",
        "webhooks:\n  delay: {probability: 0.5}\n",
        "webhooks.delay",
        2,
        "'by'",
    ),
    (
        "fail_first of no attempts",
        "webhooks:\n  reorder: {}\n  fail_first:\n    attempts: 0\n",
        "webhooks.fail_first.attempts",
        4,
        ">= 1",
    ),
    ("a key that is a list", "name: x\n? [a, b]\n: c\n", "", 2, "plain names"),
    (
        "fail_input without its message",
        "batch:\n  fail_input: {}\n",
        "batch.fail_input",
        2,
        "'message'",
    ),
    (
        "an empty line list",
        "faults:\n  - match: {line: []}\n    error: {code: BACKEND_ERROR}\n",
        "faults[0].match.line",
        2,
        "at least 1",
    ),
    (
        "an empty calls list",
        "api_faults:\n  - match: {calls: []}\n",
        "api_faults[0].match.calls",
        2,
        "at least 1",
    ),
    ("an empty routes list", "rate_limit: {routes: []}\n", "rate_limit.routes", 1, "at least 1"),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "problem"),
    [case[1:] for case in BAD_DOCUMENTS],
    ids=[case[0] for case in BAD_DOCUMENTS],
)
def test_a_bad_document_names_source_path_and_line(
    text: str, path: str, line: int, problem: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml: "), message
    where = f"{path} (line {line})" if path else f"(line {line})"
    assert f"bad.yaml: {where}: " in message, message
    assert problem in message, message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: [a, b\ndescription: x\n", 2),
        ("name: a\n  b: c\n", 2),
        ("faults:\n  - match: {a: 1\n", 3),
        ("name: x\ndescription: 'open\n", 3),
    ],
)
def test_invalid_yaml_names_its_line(text: str, line: int) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "broken.yaml")
    message = str(caught.value)
    assert message.startswith(f"broken.yaml (line {line}): not valid YAML"), message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_document_is_refused(text: str) -> None:
    with pytest.raises(ScenarioError, match=r"^empty\.yaml: the scenario is empty"):
        parse_scenario(text, "empty.yaml")


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), (12, 12),
     ("12", 12), ("1.5h", 5400), (0.5, 0.5), ("0", 0)],
)  # fmt: skip
def test_durations(raw: Any, seconds: float) -> None:
    assert duration_seconds(raw) == seconds
    value = f'"{raw}"' if isinstance(raw, str) else raw
    scenario = parse_scenario(f"processing:\n  start_delay: {value}\n", "d.yaml")
    assert scenario.start_delay == seconds


@pytest.mark.parametrize("raw", ["fast", "5 minutes", "1w", "-1s", "", True])
def test_not_durations(raw: Any) -> None:
    with pytest.raises(ValueError):
        duration_seconds(raw)


def test_yaml_integer_forms_are_accepted() -> None:
    scenario = parse_scenario("processing:\n  concurrency: 0x10\n", "hex.yaml")
    assert scenario.concurrency == 16


FULL = """\
name: everything
description: Every part of the language at once.
seed: 7
processing:
  start_delay: 30s
  latency: {distribution: lognormal, median: 800ms, sigma: 0.6}
  concurrency: 4
faults:
  - match: {custom_id: "req-1*", probability: 0.5}
    error: {code: BACKEND_ERROR, message: "boom"}
  - match: {custom_id_regex: "^x-\\\\d+$", line: [1, 2], route: "/v1/inference/*",
            model: "openai/*", content: "*weather*", every: 3}
    error: {code: BACKEND_RATE_LIMITED, status: 429, retry_after: 5}
  - match: {content_regex: "(?i)sunny"}
    error: {code: MODEL_UNAVAILABLE}
batch:
  fail_input: false
  cancel_after: 100
  window: 30m
api_faults:
  - match: {route: "/v1/inference/batch", method: POST, calls: [1, 2]}
    error: {code: MODEL_UNAVAILABLE, status: 503, retry_after: 30}
    latency: 2s
  - match: {after_calls: 5, probability: 0.1}
    error: {code: BACKEND_ERROR}
limits: {max_active_batches: 2, max_requests_per_batch: 1000, max_input_bytes: 1048576}
rate_limit: {requests: 60, per: 60s, scope: key, routes: ["/v1/*"]}
canned:
  - match: {content: "*weather*"}
    response: "Sunny, 21 degrees."
"""


def test_the_whole_language_loads() -> None:
    s = parse_scenario(FULL, "full.yaml")
    assert (s.name, s.seed, s.start_delay, s.concurrency) == ("everything", 7, 30.0, 4)
    assert s.latency is not None and s.latency.distribution == "lognormal"
    assert s.latency.params == {"median": 0.8, "sigma": 0.6}
    assert [f.code for f in s.faults] == [
        "BACKEND_ERROR",
        "BACKEND_RATE_LIMITED",
        "MODEL_UNAVAILABLE",
    ]
    assert [f.status for f in s.faults] == [502, 429, 503]
    assert s.faults[1].retry_after == 5 and s.faults[1].match.lines == frozenset({1, 2})
    assert (s.fail_input, s.cancel_after, s.window) == (None, 100, 1800.0)
    assert s.api_faults[0].calls == frozenset({1, 2}) and s.api_faults[0].latency == 2.0
    assert s.api_faults[1].after_calls == 5 and s.api_faults[1].route == "*"
    assert s.limits == {"max_active_batches": 2, "max_requests_per_batch": 1000,
                        "max_input_bytes": 1048576}  # fmt: skip
    assert s.rate_limit is not None and (s.rate_limit.requests, s.rate_limit.per) == (60, 60.0)
    assert s.canned[0].response == "Sunny, 21 degrees."


# --- `scaigrid-emulator scenario check` ----------------------------------------------------------


def test_cli_scenario_check_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert cli.main(["scenario", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "ok" in out


def test_cli_scenario_check_names_file_path_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: fine\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults:\n  - match: {every: 0}\n    error: {code: X}\n", "utf-8")
    assert cli.main(["scenario", "check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: faults[0].match.every (line 3)" in captured.err
    assert str(good) in captured.out


def test_cli_scenario_check_reports_every_problem_of_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\n"
        "procesing: {}\n"  # line 2: misspelt key
        "faults:\n"
        "  - match: {every: 0}\n"  # line 4
        "    error: {code: BACKEND_EROR}\n"  # line 5: unknown code
        "  - error: {code: I_AM_A_TEAPOT, status: 418}\n"  # a code of one's own, with a status
        "batch: {window: soon}\n",  # line 7
        "utf-8",
    )
    assert cli.main(["scenario", "check", str(bad)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"error: {bad}: procesing (line 2): unknown key 'procesing' (known: {KNOWN_TOP})",
        f"error: {bad}: faults[0].match.every (line 4): must be an integer >= 1",
        f"error: {bad}: faults[0].error.code (line 5): unknown error code 'BACKEND_EROR' "
        f"(known: {KNOWN_CODES}; or give a 'status' to inject a code of your own)",
        f"error: {bad}: batch.window (line 7): must be a duration: seconds, or a number with "
        "ms, s, m, h or d (e.g. 30s, 2h)",
    ]


KNOWN_TOP = (
    "name, description, seed, processing, faults, batch, api_faults, limits, rate_limit, canned,"
    " webhooks"
)
KNOWN_CODES = ", ".join(sorted(ERROR_CODES))


@pytest.mark.parametrize("code", ["BACKEND_EROR", "MODEL_NOT_AVAILABLE"])
def test_an_unknown_error_code_is_refused_unless_it_has_a_status(code: str) -> None:
    for where in ("faults:\n  - error: {code: %s}\n", "api_faults:\n  - error: {code: %s}\n"):
        with pytest.raises(ScenarioError, match=f"unknown error code '{code}'"):
            parse_scenario(where % code, "t.yaml")
        parse_scenario(where % f"{code}, status: 503", "t.yaml")


async def test_a_refused_scenario_lists_every_problem_in_the_422(emu: Harness) -> None:
    yaml = "faults:\n  - match: {every: 0}\n    error: {code: NOPE}\n"
    resp = await emu.client.put(f"/_emulator/tenants/{TENANT}/scenario", json={"yaml": yaml})
    err = error_of(resp, 422, "VALIDATION_ERROR")
    assert [d["message"].split(": ", 1)[1] for d in err["details"]] == [
        "faults[0].match.every (line 2): must be an integer >= 1",
        f"faults[0].error.code (line 3): unknown error code 'NOPE' (known: {KNOWN_CODES}; "
        "or give a 'status' to inject a code of your own)",
    ]
    assert "must be an integer >= 1" in err["message"] and "'NOPE'" in err["message"]


def test_cli_scenario_list_names_every_bundled_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from emulator.scenario.registry import bundled_files

    assert cli.main(["scenario", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(bundled_files())
    assert any(line.split(None, 1)[1].startswith("The inference backend") for line in lines)


def test_cli_scenario_show_prints_the_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator.scenario.registry import bundled_files

    assert cli.main(["scenario", "show", "flaky-backend"]) == 0
    assert capsys.readouterr().out == bundled_files()["flaky-backend"].read_text("utf-8")
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n", "utf-8")
    assert cli.main(["scenario", "show", str(mine)]) == 0
    assert capsys.readouterr().out == "name: mine\n"
    assert cli.main(["scenario", "show", "flaky-backned"]) == 1
    assert "unknown scenario 'flaky-backned' (bundled: api-outage" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("ref", "is_yaml"),
    [
        ("{faults: [{error: {code: BACKEND_ERROR}}]}", True),
        ("name: x", True),
        ("  batch: {fail_input: true}", True),
        ("name:\n", True),
        ("flaky-backend", False),
        ("scenarios/mine.yaml", False),
        ("C:\\scenarios\\mine.yaml", False),
    ],
)
def test_one_line_yaml_is_recognised_where_a_name_is_expected(ref: str, is_yaml: bool) -> None:
    from emulator.scenario.registry import looks_like_yaml

    assert looks_like_yaml(ref) is is_yaml


async def test_one_line_yaml_in_the_header_and_the_name_field(emu: Harness) -> None:
    resp = await emu.client.post(
        BATCH,
        json={"input_file_base64": b64([chat_line("a")])},
        headers={"X-Emulator-Scenario": "{batch: {fail_input: true}}"},
    )
    assert resp.status_code == 200, resp.text
    await emu.settle()
    assert (await emu.batch(resp.json()["data"]["id"]))["status"] == "failed"
    url = f"/_emulator/tenants/{TENANT}/scenario"
    data = (await emu.client.put(url, json={"name": "name: one-liner"})).json()["data"]
    assert data["name"] == "one-liner" and data["yaml"] == "name: one-liner"


def test_serve_takes_one_line_yaml_as_its_scenario() -> None:
    from emulator.scenario.registry import Scenarios

    assert Scenarios("name: from-the-flag").global_scenario.name == "from-the-flag"
    with pytest.raises(ScenarioError, match="unknown key 'nmae'"):
        Scenarios("nmae: typo")


def test_cli_scenario_check_of_a_missing_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scenario", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


# --- per-request faults -------------------------------------------------------------------------


def fault(match: str, code: str = "BACKEND_ERROR", message: str = "injected") -> str:
    return f'  - match: {match}\n    error: {{code: {code}, message: "{message}"}}\n'


def chats(n: int, prefix: str = "req-") -> list[dict[str, Any]]:
    return [chat_line(f"{prefix}{i}", f"Question {i}") for i in range(n)]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ('{custom_id: "req-1*"}', ["req-1", "req-10", "req-11"]),
        ('{custom_id: "req-?"}', [f"req-{i}" for i in range(10)]),
        ('{custom_id_regex: "req-[02468]$"}', ["req-0", "req-2", "req-4", "req-6", "req-8"]),
        ('{custom_id_regex: "req-1"}', ["req-1"]),  # the whole custom_id (not req-10, req-11)
        ('{content_regex: "estion 1"}', ["req-1", "req-10", "req-11"]),  # anywhere in the text
        ('{content_regex: "^QUESTION 1$"}', ["req-1"]),  # case-insensitive
        ("{line: 3}", ["req-2"]),
        ("{line: [1, 12]}", ["req-0", "req-11"]),
        ("{every: 4}", ["req-3", "req-7", "req-11"]),
        ('{custom_id: "req-1*", every: 2}', ["req-1", "req-11"]),
    ],
)
async def test_faults_by_custom_id_line_and_every(
    emu: Harness, match: str, expected: list[str]
) -> None:
    batch, results = await run_batch(emu, chats(12), "faults:\n" + fault(match))
    assert batch["status"] == "completed"
    assert failing(results) == expected
    assert (batch["completed_count"], batch["failed_count"]) == (12 - len(expected), len(expected))
    for r in results:
        if r["status"] == "error":
            assert r["error"] == {"code": "BACKEND_ERROR", "message": "injected"}
            assert "response" not in r


async def test_line_numbers_are_the_file_lines(emu: Harness) -> None:
    """A blank line still counts: the fault hits the request written on line 3."""
    data = jsonl([chat_line("a"), chat_line("b")]).replace(b"\n", b"\n\n", 1)
    await use_tenant_scenario(emu, "faults:\n" + fault("{line: 3}"))
    resp = await emu.client.post(BATCH, json={"input_file_base64": base64.b64encode(data).decode()})
    assert resp.status_code == 200, resp.text
    await emu.advance(1)
    assert failing(await emu.results(resp.json()["data"]["id"])) == ["b"]


async def test_faults_by_route_and_model(emu: Harness) -> None:
    lines = [
        chat_line("c-mini"),
        chat_line("c-4o", model="openai/gpt-4o"),
        embed_line("e-1"),
        chat_line("c-acme", model="tenant/acme/summarizer"),
    ]
    scenario = "faults:\n" + fault('{route: "/v1/inference/embed"}', "BACKEND_TIMEOUT")
    scenario += fault('{model: "openai/*"}', "MODEL_UNAVAILABLE")
    _, results = await run_batch(emu, lines, scenario)
    assert failing(results, "BACKEND_TIMEOUT") == ["e-1"]
    assert failing(results, "MODEL_UNAVAILABLE") == ["c-4o"]
    assert failing(results) == ["c-4o", "e-1"]


async def test_the_first_matching_rule_wins(emu: Harness) -> None:
    scenario = "faults:\n" + fault('{custom_id: "req-1"}', "BACKEND_TIMEOUT", "first")
    scenario += fault("{every: 1}", "BACKEND_ERROR", "second")
    _, results = await run_batch(emu, chats(3), scenario)
    assert [r["error"]["code"] for r in results] == [
        "BACKEND_ERROR",
        "BACKEND_TIMEOUT",
        "BACKEND_ERROR",
    ]
    assert [r["error"]["message"] for r in results] == ["second", "first", "second"]


async def test_a_fault_without_a_message_gets_one(emu: Harness) -> None:
    _, results = await run_batch(emu, chats(1), "faults:\n  - error: {code: BACKEND_TIMEOUT}\n")
    assert results[0]["error"]["code"] == "BACKEND_TIMEOUT"
    assert results[0]["error"]["message"]


PROBABILITY = "faults:\n" + fault("{probability: 0.2}")


async def failing_set(h: Harness, n: int = 200) -> list[str]:
    _, results = await run_batch(h, chats(n), PROBABILITY)
    return failing(results)


async def test_probability_faults_replay_with_the_seed(make_emu: MakeEmu) -> None:
    first = await failing_set(await make_emu(seed=3))
    again = await failing_set(await make_emu(seed=3))
    other = await failing_set(await make_emu(seed=4))
    assert first == again
    assert first != other
    assert 0 < len(first) < 200


async def test_probability_faults_hit_about_the_right_fraction(emu: Harness) -> None:
    failed = await failing_set(emu, 1000)
    assert 160 <= len(failed) <= 240, len(failed)


async def test_a_scenario_seed_pins_which_requests_fail(make_emu: MakeEmu) -> None:
    pinned = "seed: 11\n" + PROBABILITY
    one, two = await make_emu(seed=1), await make_emu(seed=2)
    _, results_one = await run_batch(one, chats(100), pinned)
    _, results_two = await run_batch(two, chats(100), pinned)
    assert failing(results_one) == failing(results_two)
    assert failing(results_one)


async def test_live_calls_see_faults_with_their_status(emu: Harness) -> None:
    scenario = "faults:\n"
    scenario += '  - match: {model: "openai/gpt-4o"}\n'
    scenario += "    error: {code: BACKEND_RATE_LIMITED, message: slow down, retry_after: 9}\n"
    scenario += '  - match: {content: "*teapot*"}\n'
    scenario += "    error: {code: I_AM_A_TEAPOT, status: 418, message: short and stout}\n"
    await use_tenant_scenario(emu, scenario)
    resp = await emu.client.post(CHAT, json=chat_body(model="openai/gpt-4o"))
    err = error_of(resp, 429, "BACKEND_RATE_LIMITED")
    assert err["message"] == "slow down" and err["retry_after"] == 9
    assert resp.headers["retry-after"] == "9"
    err = error_of(
        await emu.client.post(CHAT, json=chat_body("I am a TEAPOT")), 418, "I_AM_A_TEAPOT"
    )
    assert err["message"] == "short and stout"
    assert (await emu.client.post(CHAT, json=chat_body("Hello"))).status_code == 200
    stream = await emu.client.post(CHAT, json={**chat_body(model="openai/gpt-4o"), "stream": True})
    error_of(stream, 429, "BACKEND_RATE_LIMITED")


async def test_every_nth_live_call_fails(emu: Harness) -> None:
    await use_tenant_scenario(emu, "faults:\n" + fault("{every: 3}", "BACKEND_TIMEOUT"))
    statuses = [(await emu.client.post(CHAT, json=chat_body())).status_code for _ in range(9)]
    assert statuses == [200, 200, 504] * 3


# --- canned responses ---------------------------------------------------------------------------

CANNED = """\
canned:
  - match: {content: "*weather*"}
    response: "Sunny, 21 degrees."
  - match: {content_regex: "^Translate:"}
    response: "Bonjour."
  - match: {custom_id: "fixed-*"}
    response: "Fixed by id."
  - match: {model: "openai/gpt-4o"}
    response: "Answer from the big model."
"""


def content_of(response: dict[str, Any]) -> str:
    text: str = response["choices"][0]["message"]["content"]
    return text


async def test_canned_responses_in_a_batch(emu: Harness) -> None:
    lines = [
        chat_line("w", "What is the WEATHER like?"),
        chat_line("t", "Translate: hello"),
        chat_line("not-t", "Please Translate: hello"),
        chat_line("fixed-1", "anything"),
        chat_line("big", "anything", model="openai/gpt-4o"),
        chat_line("plain", "anything"),
    ]
    _, results = await run_batch(emu, lines, CANNED)
    by_id = {r["custom_id"]: r for r in results}
    assert content_of(by_id["w"]["response"]) == "Sunny, 21 degrees."
    assert content_of(by_id["t"]["response"]) == "Bonjour."
    assert content_of(by_id["fixed-1"]["response"]) == "Fixed by id."
    assert content_of(by_id["big"]["response"]) == "Answer from the big model."
    for cid in ("not-t", "plain"):
        assert content_of(by_id[cid]["response"]) not in {"Bonjour.", "Fixed by id."}
    assert by_id["w"]["response"]["choices"][0]["finish_reason"] == "stop"


async def test_canned_responses_in_live_chat(emu: Harness) -> None:
    await use_tenant_scenario(emu, CANNED)
    resp = await emu.client.post(CHAT, json=chat_body("weather in Paris?"))
    assert resp.status_code == 200, resp.text
    assert content_of(resp.json()["data"]) == "Sunny, 21 degrees."
    resp = await emu.client.post(CHAT, json=chat_body("hi", model="openai/gpt-4o"))
    assert content_of(resp.json()["data"]) == "Answer from the big model."
    resp = await emu.client.post(CHAT, json={**chat_body("weather?"), "stream": True})
    assert resp.status_code == 200
    assert "Sunny" in resp.text


async def test_canned_responses_are_cut_by_max_tokens(emu: Harness) -> None:
    long_answer = " ".join(["word"] * 200)
    await use_tenant_scenario(emu, f'canned:\n  - response: "{long_answer}"\n')
    resp = await emu.client.post(CHAT, json=chat_body("x", max_tokens=5))
    choice = resp.json()["data"]["choices"][0]
    assert choice["finish_reason"] == "length"
    assert long_answer.startswith(choice["message"]["content"])
    assert 0 < len(choice["message"]["content"]) <= 20
    _, results = await run_batch(emu, [chat_line("a", "x", max_tokens=5)])
    assert results[0]["response"]["choices"][0] == choice


# --- batch outcomes -----------------------------------------------------------------------------


async def test_fail_input_fails_the_batch(emu: Harness) -> None:
    scenario = 'batch:\n  fail_input: {message: "Line 1 is broken."}\n'
    batch, results = await run_batch(emu, chats(3), scenario)
    assert batch["status"] == "failed"
    assert batch["error"]["code"] == "INPUT_PARSE_ERROR"
    assert batch["error"]["details"] == [{"line": 1, "message": "Line 1 is broken."}]
    assert batch["failed_at"] == batch["created_at"]
    assert batch["results_url"] is None and results == []


async def test_fail_input_true_uses_a_default_message(emu: Harness) -> None:
    batch, _ = await run_batch(emu, chats(1), "batch:\n  fail_input: true\n")
    assert batch["status"] == "failed" and batch["error"]["message"]


@pytest.mark.parametrize(("n", "cancel_after"), [(8, 3), (8, 0), (3, 3), (2, 5)])
async def test_cancel_after_n_requests(emu: Harness, n: int, cancel_after: int) -> None:
    batch, results = await run_batch(emu, chats(n), f"batch:\n  cancel_after: {cancel_after}\n")
    kept = min(n, cancel_after)
    assert batch["status"] == ("cancelled" if cancel_after < n else "completed")
    assert (batch["completed_count"], batch["failed_count"]) == (kept, n - kept)
    assert [r["status"] for r in results] == ["ok"] * kept + ["error"] * (n - kept)
    assert {r["error"]["code"] for r in results[kept:]} <= {"BATCH_CANCELLED"}


async def test_cancel_after_happens_when_the_nth_request_finishes(emu: Harness) -> None:
    scenario = "processing:\n  latency: 10s\nbatch:\n  cancel_after: 2\n"
    await use_tenant_scenario(emu, scenario)
    batch = await emu.submit(chats(5))
    await emu.advance(10)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"]) == ("processing", 1)
    await emu.advance(10)
    b = await emu.batch(batch["id"])
    assert (b["status"], b["completed_count"], b["failed_count"]) == ("cancelled", 2, 3)
    assert b["cancelled_at"] == "2026-01-01T00:00:20.000Z"
    assert b["results_url"]


# --- API faults ---------------------------------------------------------------------------------


def api_fault(
    match: str, error: str = "{code: MODEL_UNAVAILABLE, status: 503, retry_after: 7}"
) -> str:
    return f"api_faults:\n  - match: {match}\n    error: {error}\n"


async def test_api_faults_on_the_nth_calls_then_recovery(emu: Harness) -> None:
    await use_tenant_scenario(emu, api_fault('{route: "/v1/models", calls: [1, 2]}'))
    for _ in range(2):
        resp = await emu.client.get(MODELS)
        err = error_of(resp, 503, "MODEL_UNAVAILABLE")
        assert err["retry_after"] == 7 and resp.headers["retry-after"] == "7"
    assert (await emu.client.get(MODELS)).status_code == 200
    assert (await emu.client.get(MODELS)).status_code == 200
    assert (await emu.client.post(CHAT, json=chat_body())).status_code == 200


async def test_a_rules_nth_call_counts_every_call_to_its_route(emu: Harness) -> None:
    """Rule A fails call 1 and rule B call 2 on the same route: call 1's failure by A is still
    B's first call, so B fires on call 2, not 3."""
    a = '{route: "/v1/models", calls: [1]}'
    b = '{route: "/v1/models", calls: [2]}'
    await use_tenant_scenario(
        emu,
        f"api_faults:\n  - match: {a}\n    error: {{code: MODEL_UNAVAILABLE, status: 503}}\n"
        f"  - match: {b}\n    error: {{code: BACKEND_ERROR}}\n",
    )
    codes = []
    for _ in range(4):
        resp = await emu.client.get(MODELS)
        codes.append(resp.json()["error"]["code"] if resp.status_code != 200 else 200)
    assert codes == ["MODEL_UNAVAILABLE", "BACKEND_ERROR", 200, 200]


async def test_api_faults_after_calls(emu: Harness) -> None:
    await use_tenant_scenario(
        emu, api_fault('{route: "/v1/*", after_calls: 2}', "{code: BACKEND_ERROR}")
    )
    statuses = [(await emu.client.get(MODELS)).status_code for _ in range(4)]
    assert statuses == [200, 200, 502, 502]


async def test_api_faults_by_method(emu: Harness) -> None:
    await use_tenant_scenario(emu, api_fault('{route: "/v1/inference/batch", method: POST}'))
    assert (await emu.client.get(BATCH)).status_code == 200
    resp = await emu.client.post(BATCH, json={"input_file_base64": b64(chats(1))})
    error_of(resp, 503, "MODEL_UNAVAILABLE")
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []


async def test_api_faults_reach_any_route_but_the_control_plane(emu: Harness) -> None:
    batch = await emu.submit(chats(1))
    await emu.settle()
    url = (await emu.batch(batch["id"]))["results_url"]
    await use_tenant_scenario(emu, api_fault('{route: "*"}', "{code: BACKEND_ERROR, status: 500}"))
    error_of(await emu.client.get(MODELS), 500, "BACKEND_ERROR")
    error_of(await emu.client.get("/v1/files"), 500, "BACKEND_ERROR")
    assert (await emu.client.get("/_emulator/clock")).status_code == 200
    # the results link carries no key, but it is the batch's owner's: the owner's scenario
    # applies to it, and another tenant's does not
    async with emu.client_for(None) as anon:
        error_of(await anon.get(url), 500, "BACKEND_ERROR")
        await use_tenant_scenario(emu, "name: calm")
        await use_tenant_scenario(
            emu, api_fault('{route: "*"}', "{code: BACKEND_ERROR}"), tenant="tenant_other"
        )
        assert (await anon.get(url)).status_code == 200


async def test_global_api_faults_hit_unauthenticated_calls(emu: Harness) -> None:
    yaml = api_fault('{route: "/v1/inference/batch/*/results"}', "{code: BACKEND_ERROR}")
    batch = await emu.submit(chats(1))
    await emu.settle()
    url = (await emu.batch(batch["id"]))["results_url"]
    assert (await emu.client.put("/_emulator/scenario", json={"yaml": yaml})).status_code == 200
    async with emu.client_for(None) as anon:
        error_of(await anon.get(url), 502, "BACKEND_ERROR")
    assert (await emu.batch(batch["id"]))["status"] == "completed"


async def api_pattern(h: Harness, scenario: str, calls: int = 40) -> list[int]:
    await use_tenant_scenario(h, scenario)
    return [(await h.client.get(MODELS)).status_code for _ in range(calls)]


async def test_api_fault_probability_replays_with_the_seed(make_emu: MakeEmu) -> None:
    scenario = api_fault("{probability: 0.5}", "{code: BACKEND_ERROR}")
    first = await api_pattern(await make_emu(seed=5), scenario)
    again = await api_pattern(await make_emu(seed=5), scenario)
    other = await api_pattern(await make_emu(seed=6), scenario)
    assert first == again
    assert first != other
    assert set(first) == {200, 502}


async def test_api_fault_probability_follows_a_scenario_seed(make_emu: MakeEmu) -> None:
    scenario = "seed: 9\n" + api_fault("{probability: 0.5}", "{code: BACKEND_ERROR}")
    one = await api_pattern(await make_emu(seed=5), scenario)
    two = await api_pattern(await make_emu(seed=6), scenario)
    assert one == two


async def test_api_fault_probability_hits_about_the_right_fraction(emu: Harness) -> None:
    pattern = await api_pattern(emu, api_fault("{probability: 0.25}", "{code: BACKEND_ERROR}"), 400)
    assert 70 <= pattern.count(502) <= 130


async def test_putting_a_scenario_again_restarts_its_call_counts(emu: Harness) -> None:
    scenario = api_fault('{route: "/v1/models", calls: [1]}')
    assert await api_pattern(emu, scenario, 2) == [503, 200]
    assert await api_pattern(emu, "name: calm\n", 1) == [200]
    assert await api_pattern(emu, scenario, 2) == [503, 200]


def recording_sleep(slept: list[float]) -> Callable[..., Awaitable[Any]]:
    """An `asyncio.sleep` that records the non-zero waits asked on this test's own event loop
    and does not wait; other loops (a session server's uvicorn thread polls every 0.1 s) sleep
    for real and are not counted."""
    real_sleep = asyncio.sleep
    loop = asyncio.get_running_loop()

    async def fake_sleep(seconds: float, *args: Any) -> Any:
        if asyncio.get_running_loop() is not loop:
            return await real_sleep(seconds, *args)
        if seconds:
            slept.append(seconds)
        return await real_sleep(0)

    return fake_sleep


async def test_injected_latency_does_not_delay_on_a_frozen_clock(
    emu: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    fake_sleep = recording_sleep(slept)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    await use_tenant_scenario(emu, "api_faults:\n  - match: {route: /v1/models}\n    latency: 1h\n")
    assert (await emu.client.get(MODELS)).status_code == 200
    assert slept == []


async def test_injected_latency_is_real_time_divided_by_the_scale(
    make_emu: MakeEmu, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    fake_sleep = recording_sleep(slept)

    h = await make_emu(clock="scaled", clock_scale=10.0)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    scenario = "api_faults:\n  - match: {route: /v1/models}\n    latency: 5s\n"
    await use_tenant_scenario(h, scenario)
    assert (await h.client.get(MODELS)).status_code == 200
    assert (await h.client.get("/v1/files")).status_code == 200
    assert slept == [0.5]


# --- quotas -------------------------------------------------------------------------------------


async def test_limits_max_active_batches(emu: Harness) -> None:
    await use_tenant_scenario(emu, "limits: {max_active_batches: 1}\nprocessing: {latency: 10s}\n")
    first = await emu.submit(chats(1))
    resp = await emu.client.post(BATCH, json={"input_file_base64": b64(chats(1))})
    err = error_of(resp, 429, "QUOTA_EXCEEDED")
    assert "retry_after" not in err and "retry-after" not in resp.headers
    assert "1" in err["message"]
    await emu.advance(10)
    assert (await emu.batch(first["id"]))["status"] == "completed"
    await emu.submit(chats(1))


async def test_limits_max_requests_per_batch(emu: Harness) -> None:
    await use_tenant_scenario(emu, "limits: {max_requests_per_batch: 3}\n")
    await emu.submit(chats(3))
    resp = await emu.client.post(BATCH, json={"input_file_base64": b64(chats(4))})
    err = error_of(resp, 429, "QUOTA_EXCEEDED")
    assert "4" in err["message"] and "3" in err["message"]


async def test_limits_max_input_bytes(emu: Harness) -> None:
    await use_tenant_scenario(emu, "limits: {max_input_bytes: 300}\n")
    resp = await emu.client.post(BATCH, json={"input_file_base64": b64(chats(5))})
    error_of(resp, 429, "QUOTA_EXCEEDED")


# --- rate limits --------------------------------------------------------------------------------

RATE = "rate_limit: {requests: 3, per: 60s, scope: key}\n"
T0 = 1767225600


def limit_headers(resp: httpx.Response) -> tuple[str, str, str]:
    h = resp.headers
    return (
        h["x-scaigrid-ratelimit-limit"],
        h["x-scaigrid-ratelimit-remaining"],
        h["x-scaigrid-ratelimit-reset"],
    )


async def test_rate_limit_counts_on_the_emulator_clock(emu: Harness) -> None:
    await use_tenant_scenario(emu, RATE)
    seen = []
    for _ in range(3):
        resp = await emu.client.get(MODELS)
        assert resp.status_code == 200
        seen.append(limit_headers(resp))
    reset = str(T0 + 60)
    assert seen == [("3", "2", reset), ("3", "1", reset), ("3", "0", reset)]
    resp = await emu.client.get(MODELS)
    err = error_of(resp, 429, "RATE_LIMITED")
    assert err["retry_after"] == 60 and resp.headers["retry-after"] == "60"
    assert limit_headers(resp) == ("3", "0", reset)
    await emu.advance(59.5)
    resp = await emu.client.post(CHAT, json=chat_body())
    assert error_of(resp, 429, "RATE_LIMITED")["retry_after"] == 1
    await emu.advance(0.5)
    resp = await emu.client.get(MODELS)
    assert resp.status_code == 200
    assert limit_headers(resp) == ("3", "2", str(T0 + 120))


async def test_rate_limit_counts_a_key_however_its_header_is_spelled(emu: Harness) -> None:
    await use_tenant_scenario(emu, RATE)
    spellings = [f"Bearer {KEY}", f"bearer {KEY}", f"Bearer  {KEY} "]
    async with emu.client_for(None) as anon:
        for spelling in spellings:
            resp = await anon.get(MODELS, headers={"Authorization": spelling})
            assert resp.status_code == 200, resp.text
        resp = await anon.get(MODELS, headers={"Authorization": f"BEARER {KEY}"})
        error_of(resp, 429, "RATE_LIMITED")
    journal = await emu.client.get("/_emulator/journal", params={"status": 429})
    [entry] = journal.json()["data"]["items"]
    assert (entry["path"], entry["tenant_id"]) == (MODELS, TENANT)


async def test_rate_limit_window_slides(emu: Harness) -> None:
    await use_tenant_scenario(emu, RATE)
    for _ in range(2):
        assert (await emu.client.get(MODELS)).status_code == 200
    await emu.advance(30)
    assert (await emu.client.get(MODELS)).status_code == 200
    error_of(await emu.client.get(MODELS), 429, "RATE_LIMITED")
    await emu.advance(30)  # the first two fall out of the window; the third stays
    resp = await emu.client.get(MODELS)
    assert limit_headers(resp) == ("3", "1", str(T0 + 90))
    assert (await emu.client.get(MODELS)).status_code == 200
    resp = await emu.client.get(MODELS)
    assert error_of(resp, 429, "RATE_LIMITED")["retry_after"] == 30


async def test_rate_limit_routes(emu: Harness) -> None:
    await use_tenant_scenario(emu, 'rate_limit: {requests: 1, routes: ["/v1/inference/*"]}\n')
    assert (await emu.client.post(CHAT, json=chat_body())).status_code == 200
    error_of(await emu.client.post(CHAT, json=chat_body()), 429, "RATE_LIMITED")
    for _ in range(3):
        resp = await emu.client.get(MODELS)
        assert resp.status_code == 200 and "x-scaigrid-ratelimit-limit" not in resp.headers


async def test_rate_limit_of_one_tenant_spares_another(emu: Harness) -> None:
    await use_tenant_scenario(emu, "rate_limit: {requests: 1}\n")
    async with emu.client_for(OTHER_KEY) as other:
        assert (await emu.client.get(MODELS)).status_code == 200
        error_of(await emu.client.get(MODELS), 429, "RATE_LIMITED")
        for _ in range(3):
            resp = await other.get(MODELS)
            assert resp.status_code == 200 and "x-scaigrid-ratelimit-limit" not in resp.headers


TWO_KEYS = (key("alpha") + "a", key("alpha") + "b")


async def tenancy_with_two_keys(make_emu: MakeEmu, tmp_path: Path) -> Harness:
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  - id: acme\n    keys:\n"
        + "".join(f"      - key: {k}\n        role: tenant_admin\n" for k in TWO_KEYS),
        encoding="utf-8",
    )
    return await make_emu(tenants=path)


@pytest.mark.parametrize(("scope", "second_key_first_call"), [("key", 200), ("tenant", 429)])
async def test_rate_limit_scope_key_or_tenant(
    make_emu: MakeEmu, tmp_path: Path, scope: str, second_key_first_call: int
) -> None:
    h = await tenancy_with_two_keys(make_emu, tmp_path)
    async with h.client_for(TWO_KEYS[0]) as one, h.client_for(TWO_KEYS[1]) as two:
        resp = await one.put(
            "/_emulator/tenants/acme/scenario",
            json={"yaml": f"rate_limit: {{requests: 2, scope: {scope}}}\n"},
        )
        assert resp.status_code == 200, resp.text
        assert [(await one.get(MODELS)).status_code for _ in range(2)] == [200, 200]
        assert (await two.get(MODELS)).status_code == second_key_first_call
        assert (await one.get(MODELS)).status_code == 429


# --- scopes and precedence ----------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def submit_with_header(h: Harness, ref: str, lines: list[Any]) -> httpx.Response:
    return await h.client.post(
        BATCH, json={"input_file_base64": b64(lines)}, headers={"X-Emulator-Scenario": ref}
    )


async def test_batch_header_beats_tenant_beats_global(make_emu: MakeEmu, tmp_path: Path) -> None:
    global_file = write(tmp_path, "global.yaml", "faults:\n" + fault("{every: 1}", "BACKEND_ERROR"))
    tenant_yaml = "faults:\n" + fault("{every: 1}", "BACKEND_TIMEOUT")
    header_file = write(
        tmp_path, "header.yaml", "faults:\n" + fault("{every: 1}", "MODEL_UNAVAILABLE")
    )
    h = await make_emu(scenario=global_file)
    _, results = await run_batch(h, chats(2))
    assert failing(results, "BACKEND_ERROR") == ["req-0", "req-1"]
    _, results = await run_batch(h, chats(2), tenant_yaml)
    assert failing(results, "BACKEND_TIMEOUT") == ["req-0", "req-1"]
    resp = await submit_with_header(h, header_file, chats(2))
    assert resp.status_code == 200, resp.text
    await h.settle()
    assert failing(await h.results(resp.json()["data"]["id"]), "MODEL_UNAVAILABLE") == [
        "req-0",
        "req-1",
    ]
    # a bundled name works in the header too
    resp = await submit_with_header(h, "cancellation", chats(7))
    await h.settle()
    assert (await h.batch(resp.json()["data"]["id"]))["status"] == "cancelled"
    # dropping the tenant's scenario falls back to the global one
    assert (await h.client.delete(f"/_emulator/tenants/{TENANT}/scenario")).status_code == 200
    _, results = await run_batch(h, chats(1))
    assert failing(results, "BACKEND_ERROR") == ["req-0"]


async def test_a_global_bundled_scenario_from_settings(make_emu: MakeEmu) -> None:
    h = await make_emu(scenario="cancellation")
    batch, _ = await run_batch(h, chats(7))
    assert batch["status"] == "cancelled" and batch["completed_count"] == 5


async def test_a_tenant_scenario_does_not_affect_another_tenant(emu: Harness) -> None:
    scenario = "faults:\n" + fault("{every: 1}") + api_fault('{route: "/v1/files"}')
    await use_tenant_scenario(emu, scenario)
    async with emu.client_for(OTHER_KEY) as other:
        _, results = await run_batch(emu, chats(2), client=other)
        assert failing(results) == []
        assert (await other.post(CHAT, json=chat_body())).status_code == 200
        assert (await other.get("/v1/files")).status_code == 200
        _, results = await run_batch(emu, chats(2))
        assert failing(results) == ["req-0", "req-1"]
        error_of(await emu.client.post(CHAT, json=chat_body()), 502, "BACKEND_ERROR")
        error_of(await emu.client.get("/v1/files"), 503, "MODEL_UNAVAILABLE")


async def test_an_unknown_scenario_in_the_header_is_422(emu: Harness) -> None:
    resp = await submit_with_header(emu, "no-such-scenario", chats(1))
    err = error_of(resp, 422, "VALIDATION_ERROR")
    assert "no-such-scenario" in err["message"]
    assert err["details"][0]["field"] == "scenario"
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []


async def test_an_invalid_scenario_file_in_the_header_is_422(emu: Harness, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "processing:\n  concurrency: many\n")
    err = error_of(await submit_with_header(emu, path, chats(1)), 422, "VALIDATION_ERROR")
    assert f"{path}: processing.concurrency (line 2)" in err["message"]


async def test_an_invalid_tenant_scenario_is_422_and_changes_nothing(emu: Harness) -> None:
    await use_tenant_scenario(emu, "faults:\n" + fault("{every: 1}"))
    resp = await emu.client.put(
        f"/_emulator/tenants/{TENANT}/scenario", json={"yaml": "faults:\n  - error: {code: x}\n"}
    )
    err = error_of(resp, 422, "VALIDATION_ERROR")
    assert "faults[0].error.code (line 2)" in err["message"]
    _, results = await run_batch(emu, chats(1))
    assert failing(results) == ["req-0"]


@pytest.mark.parametrize("name", ["api-outage", "rate-limited"])
async def test_a_submit_naming_a_scenario_of_api_rules_only_is_refused(
    emu: Harness, name: str
) -> None:
    """Its rules act on API calls, so for one batch it would do nothing: a 422 that says
    where to set it instead, and no batch made."""
    resp = await emu.client.post(
        BATCH, json={"input_file_base64": b64(chats(1))}, headers={"X-Emulator-Scenario": name}
    )
    err = error_of(resp, 422, "VALIDATION_ERROR")
    assert "only has API-level rules" in err["message"]
    assert err["details"][0]["field"] == "X-Emulator-Scenario"
    assert (await emu.client.get(BATCH)).json()["data"]["items"] == []
    both = (
        "{api_faults: [{match: {calls: [9]}, error: {code: BACKEND_ERROR}}],"
        " batch: {cancel_after: 1}}"
    )
    resp = await emu.client.post(
        BATCH, json={"input_file_base64": b64(chats(2))}, headers={"X-Emulator-Scenario": both}
    )
    assert resp.status_code == 200, resp.text  # batch-level rules too: it acts on the batch
