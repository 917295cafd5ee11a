"""The floor for live chat: a bare starlette app with the emulator's route and wire format.

POST /v1/inference/chat parses the JSON body and answers a fixed chat completion (the very bytes
the emulator answers to the body `live_chat.py` sends, ~1 KB) in the `{"status": "ok", "data"}`
envelope, rendered with orjson. No auth, no middleware, no engine: what any starlette app on this
machine pays per request.

Run: `python benchmarks/bare_app.py` prints "listening on http://127.0.0.1:PORT" like the
emulator's `serve --port 0`, and serves with the same uvicorn settings as `emulator.cli.serve`.
"""

from __future__ import annotations

import socket
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-b2f5e223587d3af1af416a39",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "scailabs/poolnoodle-omni",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Heavy career peace protect age brother reach sure answer. Food again "
                "seek century herself light into, himself pattern ahead middle movie sport "
                "sister. Method Mrs yet five social television product. Her measure door around "
                "show, change avoid question case someone. Finish head themselves story country "
                "bed expect.",
            },
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": "Agree sing fact country experience tax, purpose process collection "
                "who nor age side. Give attention development trade son ahead reveal, economic "
                "people green defense main already side. Heart effect something member term "
                "building nearly, policy stock behind player way top able.",
            },
            "finish_reason": "stop",
        },
    ],
    "usage": {"prompt_tokens": 57, "completion_tokens": 148, "total_tokens": 205},
}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not isinstance(body, dict):
        return JSON({"status": "error"}, status_code=422)
    return JSON({"status": "ok", "data": COMPLETION})


app = Starlette(routes=[Route("/v1/inference/chat", chat, methods=["POST"])])


def main() -> None:
    # The same binding and uvicorn.Config as `emulator.cli.serve`, with --log-level warning.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, ws="none", timeout_graceful_shutdown=5
    )
    print(f"bare app listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
