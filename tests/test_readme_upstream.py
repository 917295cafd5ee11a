"""The README's upstream worked example, run as written: a second `serve` as the upstream, a
front `serve` recording its answers, a 1,000-line batch followed by the client, then a replay of
the run with the upstream stopped, which gives the same answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Upstream, record and replay") :]
SECTION = SECTION[: SECTION.index("\n## ")]
PROGRESS = re.compile(r"batch_\w+ (pending|processing|completed) \d+/1000 \(\d+%\) .* ETA \S+")
PYTHON_CLI = f"{sys.executable} -m emulator "


def marked(marker: str, language: str) -> str:
    """The fenced block after `<!-- example: marker -->`."""
    after = SECTION[SECTION.index(f"<!-- example: {marker} -->") :]
    block = re.search(rf"```{language}\n(.*?)```", after, re.DOTALL)
    assert block
    return block.group(1)


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", SECTION, flags=re.DOTALL)


@contextmanager
def serve(command: str, cwd: Path) -> Iterator[str]:
    """A README `serve` command run on a free port; its base URL."""
    argv = command.replace("scaigrid-emulator ", PYTHON_CLI).split()
    argv[argv.index("--port") + 1] = "0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd, text=True
    )
    assert proc.stdout is not None
    try:
        match = re.search(r"listening on (http://\S+)", proc.stdout.readline())
        assert match, "the server did not start"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_client(front: str, cwd: Path) -> list[str]:
    """The client block against `front`: stderr (the progress) and stdout lines, in that order."""
    client_block = next(b for b in shell_blocks() if "batch submit" in b)
    script = client_block.replace("http://127.0.0.1:8080", front)
    script = script.replace("scaigrid-emulator ", PYTHON_CLI)
    done = subprocess.run(
        ["timeout", "300", "bash", "-euo", "pipefail", "-c", script],
        capture_output=True, text=True, cwd=cwd, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines() + done.stdout.splitlines()


def answers(path: Path) -> list[dict[str, Any]]:
    """The results without `created`, which follows the (real) clock of each run."""
    out = []
    for line in path.read_bytes().splitlines():
        result = orjson.loads(line)
        result["response"].pop("created")
        out.append(result)
    return out


def check_output(lines: list[str]) -> None:
    """What the README shows: progress lines of that shape, and exactly the other lines."""
    shown = marked("upstream-output", "text").splitlines()
    assert all(PROGRESS.fullmatch(line) for line in shown if " processing " in line)
    assert [line for line in lines if not PROGRESS.fullmatch(line)] == [
        line for line in shown if not PROGRESS.fullmatch(line)
    ]


def check_metrics(front: str, cwd: Path) -> None:
    """The metrics block against `front` prints exactly the lines the README shows."""
    script = marked("upstream-metrics", "sh").replace("http://127.0.0.1:8080", front)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True, text=True, cwd=cwd, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = SECTION[SECTION.index("<!-- example: upstream-metrics -->") :]
    text = re.search(r"```text\n(.*?)```", shown, re.DOTALL)
    assert text and done.stdout == text.group(1)


@pytest.mark.slow
def test_the_worked_example_runs_as_written_and_replays(tmp_path: Path) -> None:
    upstream_cmd, front_cmd = marked("upstream-servers", "sh").strip().splitlines()
    with serve(upstream_cmd, tmp_path) as upstream:
        with serve(front_cmd.replace("http://127.0.0.1:8081", upstream), tmp_path) as front:
            check_output(run_client(front, tmp_path))
            check_metrics(front, tmp_path)
    recorded = answers(tmp_path / "results.jsonl")
    assert len(recorded) == 1000 and all(r["status"] == "ok" for r in recorded)
    assert len(list((tmp_path / "tape").iterdir())) == 1000

    replay_cmd = shell_blocks()[-1].strip()
    assert "--replay tape" in replay_cmd
    with serve(replay_cmd, tmp_path) as front:  # the upstream is gone
        check_output(run_client(front, tmp_path))
    assert answers(tmp_path / "results.jsonl") == recorded
