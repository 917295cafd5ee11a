"""`scaigrid-emulator serve` as a real process: start, answer curl, shut down cleanly on signals."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from emulator import __version__

ROOT = Path(__file__).resolve().parent.parent
KEY = "sgk_0123456789abcdef0123456789abcdef"
CHAT_BODY = (
    '{"model": "scailabs/poolnoodle-omni", "messages": [{"role": "user", "content": "Hello"}], '
    '"max_tokens": 50}'
)
STARTUP_SECONDS = 15.0
SHUTDOWN_SECONDS = 10.0

pytestmark = pytest.mark.slow


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base_url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAIGRID_EMULATOR_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, waiting at most `timeout` seconds for it."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


def _wait_healthy(server: Server, within: float) -> None:
    """Poll /_emulator/health with short timeouts until it answers; bounded by `within` seconds.
    Between refused connections the loop waits on the process itself, so a crash ends it too."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=0.5) as client:
        while time.monotonic() < deadline:
            try:
                resp = client.get(f"{server.base_url}/_emulator/health")
            except httpx.TransportError:
                try:
                    code = server.proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"serve exited with {code} before answering:\n{server.stderr()}")
            if resp.status_code == 200:
                body = resp.json()
                assert body["status"] == "ok"
                assert body["data"]["version"] == __version__
                return
    pytest.fail(f"/_emulator/health did not answer within {within} s:\n{server.stderr()}")


def _start(tmp_path: Path, *extra: str) -> Server:
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", "0",
             "--db", str(tmp_path / "e.db"), *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_env(),
            cwd=tmp_path,
            text=True,
        )  # fmt: skip
    line = _read_line(proc, STARTUP_SECONDS)
    match = re.fullmatch(
        rf"scaigrid-emulator {re.escape(__version__)} listening on (http://127\.0\.0\.1:(\d+))\n",
        line,
    )
    if not match:
        proc.kill()
        proc.wait()
        pytest.fail(f"no listening line: {line!r}\n{stderr_path.read_text()}")
    assert int(match.group(2)) > 0
    server = Server(proc, match.group(1), stderr_path)
    try:
        _wait_healthy(server, within=10.0)
    except BaseException:
        proc.kill()  # a server that did not come up must not outlive the test
        proc.wait()
        raise
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = _start(tmp_path)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()
    if s.proc.stdout is not None:
        s.proc.stdout.close()


def _curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail(
            "curl is not installed; it is needed for the README example (.ci/run installs it)"
        )
    return curl


def test_readme_curl_example(server: Server) -> None:
    done = subprocess.run(
        [
            _curl(), "-s", f"{server.base_url}/v1/inference/chat",
            "-H", f"Authorization: Bearer {KEY}",
            "-H", "Content-Type: application/json",
            "-d", CHAT_BODY,
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert body["status"] == "ok", body
    choice = body["data"]["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert body["data"]["model"] == "scailabs/poolnoodle-omni"
    assert body["data"]["usage"]["completion_tokens"] <= 50


def test_served_responses_carry_request_ids_and_errors(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        resp = client.get("/v1/models")
        assert resp.status_code == 401
        assert resp.json()["meta"]["request_id"] == resp.headers["x-request-id"]
        resp = client.get("/v1/models/openai%2Fgpt-4o", headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["data"]["slug"] == "openai/gpt-4o"


def _stop(server: Server, sig: signal.Signals) -> int:
    server.proc.send_signal(sig)
    try:
        return server.proc.wait(timeout=SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve did not stop within {SHUTDOWN_SECONDS} s of {sig.name}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_on_signal(server: Server, sig: signal.Signals) -> None:
    code = _stop(server, sig)
    stderr = server.stderr()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "shutdown complete" in stderr.lower()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_starting_stops_it_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """A signal sent as soon as the listening line appears, while the app may still be starting
    (before uvicorn has its own handlers), is a request to stop, never lost."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=tmp_path, text=True,
    )  # fmt: skip
    try:
        assert "listening on" in _read_line(proc, STARTUP_SECONDS)
        proc.send_signal(sig)
        code = proc.wait(timeout=SHUTDOWN_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_the_start_signal_handler_asks_uvicorn_to_exit() -> None:
    """Deterministically: the handler in place around `server.run` is uvicorn's `handle_exit`."""
    import socket as socket_module

    import uvicorn

    from emulator.cli import _run_until_signalled

    server = uvicorn.Server(uvicorn.Config(app=None))
    seen: list[object] = []
    server.run = lambda sockets=None: seen.append(signal.getsignal(signal.SIGTERM))  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGTERM)
    with socket_module.socket() as sock:
        _run_until_signalled(server, sock, "banner")
    assert seen == [server.handle_exit]
    assert signal.getsignal(signal.SIGTERM) is before


def test_module_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "--version"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"scaigrid-emulator {__version__}"


def test_bad_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--clock", "sideways"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("scaigrid-emulator: error: --clock='sideways': ")
    assert "Traceback" not in done.stderr


def _old_database(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
        db.commit()
    return path


@pytest.mark.parametrize(
    ("db", "says"),
    [
        (_old_database, "the database has schema version 99, and this emulator uses version"),
        (lambda p: p / "no-such-folder" / "x.db", "cannot open the database"),
    ],
)
def test_a_database_that_cannot_be_used_is_refused_before_any_url(
    tmp_path: Path, db: Callable[[Path], Path], says: str
) -> None:
    path = db(tmp_path / "old.db") if db is _old_database else db(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--db", str(path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""  # no "listening on" line
    assert done.stderr.startswith(f"scaigrid-emulator: error: {path}: ")
    assert says in done.stderr and "Traceback" not in done.stderr


def test_the_date_header_follows_the_emulator_clock(tmp_path: Path) -> None:
    """One `Date` per response, uvicorn's left out, from the emulator clock: a frozen clock's
    instant, on every route and on errors, and after an advance the advanced instant."""
    server = _start(tmp_path, "--clock", "frozen", "--clock-start", "2031-05-06T07:08:09Z")
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            auth = {"Authorization": "Bearer sgk_" + "d" * 40}
            chat = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            answers = [
                client.get("/_emulator/health"),
                client.get("/v1/models", headers=auth),
                client.post("/v1/inference/chat", json=chat, headers=auth),  # the fast path
                client.post("/v1/inference/chat", json={"model": "nope"}, headers=auth),
                client.get("/v1/no-such-route"),
            ]
            for resp in answers:
                assert resp.headers.get_list("date") == ["Tue, 06 May 2031 07:08:09 GMT"]
            assert client.post("/_emulator/clock/advance", json={"hours": 25}).is_success
            after = client.get("/v1/models", headers=auth)
            assert after.headers["date"] == "Wed, 07 May 2031 08:08:09 GMT"
    finally:
        _stop(server, signal.SIGTERM)


#: libraries a server loads on the first use of the feature that needs them, never at start:
#: each would add milliseconds to every start (httpx alone ~25 ms on a quiet machine)
LOADED_ON_FIRST_USE = (
    "httpx",  # webhook deliveries, http(s) input sources, the upstream
    "faker",  # its words are read from source; the library itself is never needed to serve
    "rich",  # the client's progress bar
    "boto3",  # s3:// input sources
    "jsonschema",
    "websockets",  # no route speaks it
    "anyio._backends._asyncio",  # see `api.http.Stream`
    "emulator.inference.regexgen",  # JSON-schema `pattern`s
    "emulator.conformance.runner",
    "emulator.client.api",
)


def test_starting_loads_no_library_a_feature_loads_on_first_use(tmp_path: Path) -> None:
    """What `serve` imports and builds before its first answer leaves these out."""
    code = (
        "import sys, uvicorn\n"
        "from emulator.cli import server_config\n"
        "from emulator.api.app import create_app\n"
        "from emulator.core import Emulator\n"
        "from emulator.settings import Settings\n"
        f"core = Emulator(Settings(db={str(tmp_path / 'e.db')!r}))\n"
        "server_config(create_app(core=core, owned=True), 'warning').load()\n"
        f"print(sorted(m for m in {LOADED_ON_FIRST_USE!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
