"""The command-line client (`scaigrid-emulator batch|files|clock|scenario use`) against a real
server on loopback (the `scaigrid` fixture's). `--wait` sleeps through `commands.sleep`, which
the tests replace with `scaigrid.sleep`: the emulator clock moves instead of the test waiting."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator import cli
from emulator.client import commands
from emulator.pytest_plugin import EmulatorServer, Scaigrid

ROOT = Path(__file__).resolve().parent.parent
SLOW = "slow-processing"  # starts 30 min after submit, then one request every 10 min


def chat(custom_id: str) -> dict[str, Any]:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/inference/chat", "body": body}


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps(chat(c)) + "\n" for c in ("a", "b", "c")))
    return path


class Run:
    """`scaigrid-emulator ...` in this process, against the test's tenant: exit code, stdout and
    stderr."""

    def __init__(self, scaigrid: Scaigrid, capsys: pytest.CaptureFixture[str]) -> None:
        self.env = {"SCAIGRID_BASE_URL": scaigrid.base_url, "SCAIGRID_API_KEY": scaigrid.api_key}
        self.capsys = capsys

    def __call__(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(list(argv), env=self.env if env is None else env)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def run(
    scaigrid: Scaigrid, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    monkeypatch.setattr(commands, "sleep", scaigrid.sleep)
    return Run(scaigrid, capsys)


def api(scaigrid: Scaigrid, path: str) -> Any:
    resp = scaigrid.client.get(path)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_submit_and_wait_prints_the_id_then_plain_progress_lines(
    scaigrid: Scaigrid, run: Run, input_file: Path
) -> None:
    scaigrid.use_scenario(SLOW)
    code, out, err = run(
        "batch", "submit", str(input_file), "--metadata", "project=demo", "--metadata", "n=1",
        "--window", "4h", "--wait", "--interval", "600",
    )  # fmt: skip
    batch_id = out.strip()
    assert code == 0, err
    batch = api(scaigrid, f"/v1/inference/batch/{batch_id}")
    assert batch["metadata"] == {"project": "demo", "n": "1"}
    assert batch["endpoint_completion_window"] == "4h" and batch["status"] == "completed"
    # polls at 1 s, then every 10 min (601 s, 1201 s, ...); processing starts at 30 min, and a
    # request ends every 10 min: 1 done at 2401 s is 1 in 601 s, 2 at 3001 s are 2 in 1201 s, and
    # the batch ended at 60 min, so its rate is 3 in 1800 s
    assert err.splitlines() == [
        f"{batch_id} pending 0/3 (0%) - req/s ETA -:--:--",
        f"{batch_id} processing 0/3 (0%) - req/s ETA -:--:--",
        f"{batch_id} processing 1/3 (33%) 0.00166 req/s ETA 0:20:02",
        f"{batch_id} processing 2/3 (66%) 0.00167 req/s ETA 0:10:00",
        f"{batch_id} completed 3/3 (100%) 0.00167 req/s ETA 0:00:00",
        f"{batch_id} completed: 3/3 done, 0 failed, cost {batch['cost']['amount']} USD",
    ]


def test_wait_shows_rich_progress_on_a_terminal(
    scaigrid: Scaigrid, run: Run, input_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    scaigrid.use_scenario(SLOW)
    code, out, _ = run("batch", "submit", str(input_file), "--wait", "--interval", "600")
    assert code == 0
    shown = terminal.getvalue()
    assert "\x1b[" in shown  # drawn with escape codes: a live bar, not lines
    assert "3/3" in shown and "0.00167 req/s" in shown and f"{out.strip()} completed" in shown


def test_wait_exits_4_when_the_batch_fails(scaigrid: Scaigrid, run: Run, input_file: Path) -> None:
    scaigrid.use_scenario("input-parse-failure")
    code, out, err = run("batch", "submit", str(input_file), "--wait")
    assert code == commands.EXIT_BATCH_NOT_COMPLETED == 4
    assert err.splitlines()[-1].startswith(f"{out.strip()} failed: 0/3 done, 0 failed")
    assert "INPUT_PARSE_ERROR" in err


def test_status_list_cancel_and_results(
    scaigrid: Scaigrid, run: Run, input_file: Path, tmp_path: Path
) -> None:
    scaigrid.use_scenario(SLOW)
    _, out, _ = run("batch", "submit", str(input_file))
    first = out.strip()
    code, out, err = run("batch", "results", first)
    assert (code, out) == (1, "")
    assert err == f"scaigrid-emulator: error: {first} is pending: it has no results yet\n"
    scaigrid.advance(minutes=40)  # one request done
    code, out, _ = run("batch", "cancel", first)
    assert (code, out) == (0, f"{first} cancelled\n")
    code, out, _ = run("batch", "status", first)
    assert (
        out.splitlines()[0]
        == f"{first} cancelled: 3/3 done, 2 failed, cost "
        + api(scaigrid, f"/v1/inference/batch/{first}")["cost"]["amount"]
        + " USD"
    )
    code, out, _ = run("batch", "status", first, "--json")
    assert json.loads(out)["status"] == "cancelled"
    _, out, _ = run("batch", "submit", str(input_file))
    second = out.strip()
    code, out, _ = run("batch", "list")
    assert [line.split()[:2] for line in out.splitlines()] == [
        [second, "pending"], [first, "cancelled"],
    ]  # fmt: skip
    _, out, _ = run("batch", "list", "--status", "cancelled", "--json")
    assert [b["id"] for b in json.loads(out)] == [first]
    code, out, _ = run("batch", "results", first)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["custom_id"], r["status"]) for r in lines] == [
        ("a", "ok"),
        ("b", "error"),
        ("c", "error"),
    ]
    target = tmp_path / "results.jsonl"
    code, _, err = run("batch", "results", first, "--out", str(target))
    assert code == 0 and err == f"{first}: results written to {target}\n"
    assert target.read_text() == out


def test_files_upload_list_and_delete(scaigrid: Scaigrid, run: Run, input_file: Path) -> None:
    code, out, _ = run("files", "upload", str(input_file))
    file_id = out.strip()
    assert code == 0 and api(scaigrid, f"/v1/files/{file_id}")["line_count"] == 3
    _, out, _ = run("files", "list")
    assert out.split()[:2] == [file_id, "input.jsonl"]
    _, out, _ = run("files", "list", "--json")
    assert [f["id"] for f in json.loads(out)] == [file_id]
    assert run("files", "delete", file_id)[:2] == (0, f"{file_id} deleted\n")
    code, _, err = run("files", "delete", file_id)
    assert code == 1
    assert err.startswith("scaigrid-emulator: error: FILE_NOT_FOUND: ")
    assert err.rstrip().endswith("(HTTP 404)")


def test_clock_show_and_advance(scaigrid: Scaigrid, run: Run) -> None:
    now = scaigrid.now()
    assert run("clock", "show") == (0, f"{now} frozen\n", "")
    code, out, _ = run("clock", "advance", "2h")
    assert code == 0 and out == f"{scaigrid.now()} frozen\n"
    assert scaigrid.now()[11:13] == f"{(int(now[11:13]) + 2) % 24:02d}"
    assert run("clock", "advance", "soon")[0] == commands.EXIT_USAGE


def test_scenario_use_for_a_tenant_by_name_and_by_file(
    scaigrid: Scaigrid, run: Run, tmp_path: Path
) -> None:
    own = f"/_emulator/tenants/{scaigrid.tenant_id}/scenario"
    assert run("scenario", "use", "flaky-backend", "--tenant") == (
        0, "tenant of this API key scenario: flaky-backend\n", "",
    )  # fmt: skip
    assert api(scaigrid, own)["name"] == "flaky-backend"
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nprocessing: {start_delay: 5m}\n")
    code, out, _ = run("scenario", "use", str(mine), "--tenant", scaigrid.tenant_id)
    assert (code, out) == (0, f"tenant {scaigrid.tenant_id} scenario: mine\n")
    assert api(scaigrid, own)["yaml"] == mine.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("processing: {start_delay: soon}\n")
    code, _, err = run("scenario", "use", str(bad), "--tenant")
    assert code == 1 and "VALIDATION_ERROR" in err and "Traceback" not in err


def test_refusals_are_the_servers_code_and_message(scaigrid: Scaigrid, run: Run) -> None:
    code, out, err = run("batch", "status", "batch_nope")
    assert (code, out) == (1, "")
    assert err == (
        "scaigrid-emulator: error: BATCH_NOT_FOUND: Batch 'batch_nope' not found. (HTTP 404)\n"
    )
    env = {**run.env, "SCAIGRID_API_KEY": "sgk_short"}
    code, _, err = run("batch", "list", env=env)
    assert code == 1 and err.startswith("scaigrid-emulator: error: AUTH_")


def test_usage_errors_and_an_unreachable_server(run: Run, input_file: Path) -> None:
    no_key = {"SCAIGRID_BASE_URL": run.env["SCAIGRID_BASE_URL"]}
    assert run("batch", "list", env=no_key) == (
        2, "", "scaigrid-emulator: error: no API key: pass --api-key or set SCAIGRID_API_KEY\n",
    )  # fmt: skip
    code, _, err = run("batch", "submit", str(input_file), "--metadata", "oops")
    assert (code, err) == (2, "scaigrid-emulator: error: --metadata takes KEY=VALUE, got 'oops'\n")
    code, _, err = run("batch", "submit", "/no/such/file.jsonl")
    assert (code, err) == (2, "scaigrid-emulator: error: /no/such/file.jsonl: no such file\n")
    code, _, err = run("batch", "list", "--base-url", "http://127.0.0.1:9")
    assert code == commands.EXIT_UNREACHABLE == 3
    assert err.startswith("scaigrid-emulator: error: cannot reach the server: http://127.0.0.1:9")


def test_flags_beat_the_environment(scaigrid: Scaigrid, run: Run) -> None:
    env = {"SCAIGRID_BASE_URL": "http://127.0.0.1:9", "SCAIGRID_API_KEY": "sgk_wrong"}
    code, out, err = run(
        "batch", "list", "--base-url", scaigrid.base_url, "--api-key", scaigrid.api_key, env=env
    )
    assert (code, out, err) == (0, "", "")


def test_the_admin_token_from_a_flag_or_the_environment(
    guarded: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"SCAIGRID_BASE_URL": guarded.base_url}
    assert cli.main(["clock", "show"], env=env) == 1
    assert "AUTH_TOKEN_INVALID" in capsys.readouterr().err
    assert cli.main(["scenario", "use", "slow-processing", "--admin-token", "t0ken"], env=env) == 0
    assert capsys.readouterr().out == "global scenario: slow-processing\n"
    env["SCAIGRID_EMULATOR_ADMIN_TOKEN"] = "t0ken"
    assert cli.main(["clock", "advance", "90s"], env=env) == 0
    assert capsys.readouterr().out.endswith(" frozen\n")
    assert guarded.core.scenarios.global_scenario.name == "slow-processing"


@pytest.mark.slow
def test_as_a_process_it_prints_plain_lines_and_imports_nothing_it_need_not(
    scaigrid: Scaigrid, input_file: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCAIGRID_BASE_URL": scaigrid.base_url,
           "SCAIGRID_API_KEY": scaigrid.api_key}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "batch", "submit", str(input_file), "--wait"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip()
    assert done.stderr.splitlines()[-1].startswith(f"{batch_id} completed: 3/3 done")
    assert "\x1b[" not in done.stderr  # not a terminal: no escape codes
    helped = subprocess.run(
        [sys.executable, "-m", "emulator", "batch", "submit", "--help"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    for code, what in commands.EXIT_CODES.items():
        assert f"{code:<4} {what}" in helped.stdout
    probe = "import sys, emulator.cli; print(sorted({'httpx', 'rich'} & set(sys.modules)))"
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert imported.stdout.strip() == "[]"
