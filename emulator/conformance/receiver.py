"""A webhook receiver for the signature checks: a small HTTP server in a thread that keeps every
POST it gets (headers and raw body) and answers 200.

It listens on loopback; against a service that cannot reach this machine, `--receiver-url`
names a public URL (a tunnel, say) that forwards to `--receiver-port`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]  # lower-case names
    body: bytes


class Receiver:
    def __init__(self, port: int = 0, url: str | None = None) -> None:
        self.posts: list[Received] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                post = Received(
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._arrived:
                    receiver.posts.append(post)
                    receiver._arrived.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the check reports what arrived."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.url = url or f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait(self, count: int, timeout: float) -> list[Received]:
        """The posts once `count` have arrived, or what arrived within `timeout` seconds (a
        blocking wait on the arrival itself, for a thread)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)
