"""The README tells the truth: its shell examples run as written against a real `serve`, and its
settings table and scenario list match the code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from emulator.scenario.registry import bundled_files
from emulator.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real `scaigrid-emulator serve` on a free port; its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--db", str(tmp_path / "e.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, f"no listening line: {line!r}"
        base = match.group(1)
        # The socket listens before the line is printed, so a request waits for the app to start.
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{base}/_emulator/health").status_code == 200
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


ONE_CHAT = base64.b64encode(
    orjson.dumps(
        {
            "custom_id": "r1",
            "method": "POST",
            "url": "/v1/inference/chat",
            "body": {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        }
    )
).decode()


def python_block(marker: str) -> str:
    return next(b for b in re.findall(r"```python\n(.*?)```", README, re.DOTALL) if marker in b)


def run_block(block: str, base: str, cwd: Path, **replace: str) -> str:
    assert shutil.which("curl"), "curl is needed (.ci/run installs it)"
    script = block.replace("http://127.0.0.1:8080", base)
    for old, new in replace.items():
        script = script.replace(old, new)
    done = subprocess.run(
        ["timeout", "30", "bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_chat_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "/v1/inference/chat" in b and "batch" not in b)
    out = orjson.loads(run_block(block, server, tmp_path))
    assert out["status"] == "ok"
    assert out["data"]["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.slow
def test_batch_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "input_file_base64" in b)
    lines = run_block(block, server, tmp_path).strip().splitlines()
    status = orjson.loads(lines[0])["data"]
    assert status["status"] == "completed"
    assert (status["total_count"], status["completed_count"], status["failed_count"]) == (3, 3, 0)
    assert status["metadata"] == {"project": "demo"}
    results = [orjson.loads(line) for line in lines[1:]]
    assert [r["custom_id"] for r in results] == ["req-1", "req-2", "req-3"]
    assert all(r["status"] == "ok" for r in results)
    assert len(results[2]["response"]["data"]) == 2  # two embeddings


@pytest.mark.slow
def test_webhook_receiver_runs_as_written(server: str, tmp_path: Path) -> None:
    """The README's receiver, exec'd as written, gets a real delivery from a real `serve`
    (real clock, so its 300 s window holds), refuses what it must, and handles an event once."""
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}  # not __main__: no port 9000
    exec(compile(python_block("compare_digest"), "README.md", "exec"), namespace)
    handled: list[dict[str, Any]] = []
    namespace["handle"] = handled.append
    httpd = namespace["HTTPServer"](("127.0.0.1", 0), namespace["Receiver"])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    receiver = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        register = next(b for b in shell_blocks() if "/v1/webhooks" in b)
        out = run_block(register, server, tmp_path, **{"http://127.0.0.1:9000/": receiver})
        webhook = orjson.loads(out)["data"]
        key = re.search(r'KEY="(sgk_\w+)"', register)
        assert key and webhook["url"] == receiver
        auth = {"Authorization": f"Bearer {key.group(1)}"}
        with httpx.Client(base_url=server, headers=auth, timeout=30) as client:
            submit = client.post("/v1/inference/batch", json={"input_file_base64": ONE_CHAT})
            assert submit.status_code == 200, submit.text
            assert client.post("/_emulator/clock/advance", json={"seconds": 0}).status_code == 200
            [event] = handled
            assert event["event_type"] == "batch.completed"
            assert event["payload"]["batch_id"] == submit.json()["data"]["id"]
            deliveries = client.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()
            assert [d["status"] for d in deliveries["data"]["items"]] == ["success"]

            # the same event twice, a stale timestamp, a wrong signature
            body = orjson.dumps({**event, "event_id": "evt_again"})
            secret = namespace["SECRET"].encode()
            good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            now, stale = str(int(time.time())), str(int(time.time()) - 301)
            posts = [(good, now), (good, now), (good, stale), ("sha256=" + "0" * 64, now)]
            answers = [
                client.post(
                    receiver,
                    content=body,
                    headers={"X-ScaiGrid-Signature": sig, "X-ScaiGrid-Timestamp": ts},
                ).status_code
                for sig, ts in posts
            ]
        assert answers == [200, 200, 401, 401]
        assert [e["event_id"] for e in handled] == [event["event_id"], "evt_again"]  # once
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_settings_table_matches_the_code() -> None:
    rows = re.findall(
        r"^\| `(--[a-z0-9-]+)` \| `(SCAIGRID_EMULATOR_[A-Z0-9_]+)` \|", README, re.MULTILINE
    )
    assert rows == [(s.flag, s.env) for s in SETTINGS]


def test_bundled_scenarios_are_the_ones_listed() -> None:
    section = README[README.index("## Scenarios") :]
    listed = re.findall(r"`([a-z-]+)`", section[: section.index("```")])
    assert set(bundled_files()) <= set(listed)


def test_the_two_commands_are_there() -> None:
    blocks = shell_blocks()
    assert any(".venv/bin/scaigrid-emulator serve" in b for b in blocks)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(b.strip() for b in blocks if ".venv/bin/pytest" in b)
    assert test_command in ci


@pytest.mark.slow
def test_health_and_metrics_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "/health" in b)
    lines = run_block(block, server, tmp_path).strip().splitlines()
    assert orjson.loads(lines[0])["data"]["status"] == "healthy"
    assert (
        'scaigrid_emulator_http_requests_total{route="/health",method="GET",status="200"} 1'
        in lines
    )
    assert 'scaigrid_emulator_batches{status="pending"} 0' in lines


@pytest.mark.slow
def test_openapi_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "/openapi.json" in b)
    assert run_block(block, server, tmp_path).strip() == "3.1.0 ['get', 'post']"
    assert "prints `3.1.0 ['get', 'post']`" in README


def test_conformance_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "conformance --base-url" in b)
    command = f"{sys.executable} -m emulator conformance"
    out = run_block(block, server, tmp_path, **{"scaigrid-emulator conformance": command})
    lines = out.splitlines()
    shown = re.search(r"```text\n(PASS .*?)```", README, re.DOTALL)
    assert shown, "the README shows the command's output"
    for line in shown.group(1).splitlines():
        assert line == "..." or line in lines, line
    assert lines[-1].startswith("8 passed, 0 failed, 14 skipped")


def readme_input_file() -> str:
    """The three-line input file of the README's batch example."""
    block = next(b for b in shell_blocks() if "input_file_base64" in b)
    match = re.search(r"cat > input.jsonl <<'EOF'\n(.*?)\nEOF\n", block, re.DOTALL)
    assert match
    return match.group(1) + "\n"


@pytest.mark.slow
def test_client_example_runs_as_written(server: str, tmp_path: Path) -> None:
    block = next(b for b in shell_blocks() if "scaigrid-emulator batch submit" in b)
    (tmp_path / "input.jsonl").write_text(readme_input_file())
    command = {"scaigrid-emulator ": f"{sys.executable} -m emulator "}
    out = run_block(block, server, tmp_path, **command).splitlines()
    assert re.fullmatch(r"batch_\w+ completed: 3/3 done, 0 failed, cost \d+\.\d{6} USD", out[0])
    results = [
        orjson.loads(line) for line in (tmp_path / "results.jsonl").read_bytes().splitlines()
    ]
    assert [r["custom_id"] for r in results] == ["req-1", "req-2", "req-3"]
    batch_id = out[0].split()[0]
    listed = [line.split()[0] for line in out if line.startswith("batch_")]
    assert batch_id in listed[1:]  # `batch list --status completed`
    assert any(re.fullmatch(r"file-\w+", line) for line in out)  # `files upload`
    assert out[-1] == "tenant of this API key scenario: slow-processing"


def compose_example() -> dict[str, Any]:
    import yaml

    section = README[README.index("<!-- example: compose -->") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block
    document: dict[str, Any] = yaml.safe_load(block.group(1))
    return document


def test_compose_example_fits_the_image_and_the_settings() -> None:
    doc = compose_example()
    service = doc["services"]["scaigrid"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^VOLUME /data$", dockerfile, re.MULTILINE)
    assert service["volumes"] == ["scaigrid-data:/data"] and "scaigrid-data" in doc["volumes"]
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.MULTILINE)
    assert service["ports"] == ["8080:8080"]
    assert set(service["environment"]) <= {s.env for s in SETTINGS}
    assert doc["services"]["tests"]["depends_on"]["scaigrid"]["condition"] == "service_healthy"


@pytest.mark.slow
def test_compose_health_check_and_client_environment_work(server: str) -> None:
    """The health check's command passes against a serving emulator and fails without one, and
    the tests service's environment is all the client needs."""
    doc = compose_example()
    check = doc["services"]["scaigrid"]["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1] == "python3"
    port = server.rsplit(":", 1)[1]
    argv = [sys.executable, *(arg.replace(":8080", f":{port}") for arg in check[2:])]
    assert subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    closed = [sys.executable, *(arg.replace(":8080", ":9") for arg in check[2:])]
    assert subprocess.run(closed, capture_output=True, timeout=30, check=False).returncode != 0
    env = {
        **os.environ,
        **{k: v.replace("http://scaigrid:8080", server) for k, v in
           doc["services"]["tests"]["environment"].items()},
    }  # fmt: skip
    listed = subprocess.run(
        [sys.executable, "-m", "emulator", "batch", "list"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
