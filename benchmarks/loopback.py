"""What the reliability scripts (crash_trials.py, soak.py) share: an emulator `serve` process on a
file database that can be killed and started again on it, and a webhook receiver on a loopback
socket. Both talk to 127.0.0.1 only."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Server

KEY = "sgk_" + "c0ffee42" * 4
AUTH = {"Authorization": f"Bearer {KEY}"}
WEBHOOK_SECRET = "whsec_" + "0123456789abcdef" * 2
START = "2026-01-01T00:00:00Z"


class Emulator:
    """`python -m emulator serve` on `db`; `kill()` is SIGKILL, `stop()` SIGTERM."""

    def __init__(self, db: Path, *args: str, name: str = "emulator") -> None:
        argv = ["-m", "emulator", "serve", "--port", "0", "--db", str(db), *args]
        self.server = Server(name, argv, cwd=db.parent)
        self.proc = self.server.proc
        self.url = self.server.url
        self.client = httpx.Client(base_url=self.url, headers=AUTH, timeout=60.0, trust_env=False)
        try:
            self._wait_healthy()
        except BaseException:
            self.kill()
            raise

    def _wait_healthy(self) -> None:
        # The socket is bound before the address is printed: a connection waits in the backlog
        # until the app is up, so short timeouts and a bounded number of tries cover the start.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulator exited: {self.log()[-2000:]}")
            try:
                resp = self.client.get("/_emulator/health", timeout=0.5)
            except httpx.TransportError:
                continue
            if resp.status_code == 200 and resp.json()["data"]["status"] == "healthy":
                return
        raise RuntimeError(f"the emulator never became healthy: {self.log()[-2000:]}")

    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        f = self.server.stderr
        if f.closed:
            return self._last_log
        f.flush()
        f.seek(0)
        return f.read().decode(errors="replace")

    _last_log = ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        """SIGTERM and wait: a clean shutdown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        if not self.server.stderr.closed:
            self._last_log = self.log()
        self.client.close()
        self.server.stop()

    # --- calls ---------------------------------------------------------------------------------

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.client.request(method, path, **kwargs)
        if resp.status_code != 200:
            raise AssertionError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()["data"]

    def clock(self) -> str:
        now: str = self.ok("GET", "/_emulator/clock")["now"]
        return now

    def advance(self, seconds: float) -> str:
        now: str = self.ok("POST", "/_emulator/clock/advance", json={"seconds": seconds})["now"]
        return now


Answer = Callable[[int], int]


class Received:
    """What a receiver got: (headers, body, status answered) per post, in arrival order."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()

    def snapshot(self) -> list[tuple[dict[str, str], bytes, int]]:
        with self.lock:
            return list(self.posts)


def failing_first(count: int, status: int = 503) -> Answer:
    """`status` to the first `count` posts, 200 after."""
    return lambda n: status if n <= count else 200


@contextmanager
def receiver(answer: Answer) -> Iterator[tuple[str, Received]]:
    """A webhook receiver on 127.0.0.1; `answer(n)` is the status of the n-th post (1-based)."""
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with got.lock:
                status = answer(len(got.posts) + 1)
                got.posts.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]
