"""The live inference fast path: a POST to a native inference route, answered in one function.

Live chat is the emulator's hottest route, and on the general path most of a call's cost is
plumbing the answer does not need: Starlette's two error middlewares, the router, the Request
object and the scenario gate, each adding a frame and wrapping `send`. When no scenario in force
gates the API, a POST to `/v1/inference/{chat,generate,embed}` is answered here with the same
steps in the same order (request id, authentication and permission, the body, `Live.infer`, the
envelope, `X-Request-ID`, the journal) and the same renderer for errors. A streamed chat, a gated
scenario, a route that links back to the server (images) and every other route go the general
way. `tests/test_fast_paths.py` sends the same requests both ways and compares the bytes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator import wire
from emulator.api.http import (
    authorization,
    parse_object,
    receive_body,
    render_error,
    replayed,
)
from emulator.api.inference import PERMISSION
from emulator.endpoints import ENDPOINTS
from emulator.errors import EmulatorError, InternalError
from emulator.journal import Exchange

if TYPE_CHECKING:
    from emulator.core import Emulator

log = logging.getLogger("emulator")

#: the routes the fast path answers: every inference route whose answer does not link back to
#: the server (image links need the URL the caller used, which the general path works out)
ROUTES = frozenset(path for path, endpoint in ENDPOINTS.items() if not endpoint.links)

_JSON_TYPE = b"application/json"


class FastInference:
    """Answers what `takes` accepts; `general` (the whole app) answers everything else."""

    def __init__(self, core: Emulator, general: ASGIApp) -> None:
        self.core = core
        self.general = general

    def takes(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in ROUTES
            and not self.core.scenarios.gated
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        core = self.core
        route = scope["path"]
        request_id = core.ids.request_id()
        date = core.clock.http_date()
        tenant_id = None
        status = 500
        # what the journal keeps, captured as the request context does (references, no copies)
        exchange = Exchange(scope["headers"])
        try:
            principal = core.tenancy.authenticate(authorization(scope))
            tenant_id = principal.tenant_id
            principal.require(PERMISSION)
            raw = await receive_body(receive)
            exchange.request_body(raw)
            body = parse_object(raw)
            if body.get("stream") is True:  # SSE: the general path's streaming response
                status = 0  # the general path journals it
                await self._general(scope, receive, send, request_id, raw)
                return
            live = core.live
            if live.upstream is None:
                answer = live.infer(route, body, tenant_id, None, raw)
            else:  # awaited here: the upstream's answer goes out the same way as the engine's
                answer = await live.answer(route, body, tenant_id, None, raw)
            content = orjson.dumps(wire.ok(answer))
            status = 200
            exchange.response_headers = headers = [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", _JSON_TYPE),
                (b"x-request-id", request_id.encode()),
                (b"date", date),
            ]
            exchange.response_body(content)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        except EmulatorError as err:
            status = err.status
            await _render(err, scope, receive, send, request_id, exchange, date)
        except Exception as exc:  # the general path's last line of defence, the same way
            log.exception("unhandled error on %s %s", scope["method"], route)
            status = 500
            internal = InternalError(f"Internal error ({type(exc).__name__}).")
            await _render(internal, scope, receive, send, request_id, exchange, date)
        finally:
            if status:
                core.journal.record(scope, status, tenant_id, request_id, exchange)
                core.metrics.request(route, "POST", status)  # its path is its template

    async def _general(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, raw: bytes
    ) -> None:
        """Hand the request to the general path with the id it already has and the body it
        already read (the general path journals it)."""
        scope.setdefault("state", {})["request_id"] = request_id
        await self.general(scope, replayed(raw, receive), send)


async def _render(
    err: EmulatorError,
    scope: Scope,
    receive: Receive,
    send: Send,
    request_id: str,
    exchange: Exchange,
    date: bytes,
) -> None:
    """The one renderer's response, with `X-Request-ID` and `Date` last as the request context
    adds them."""
    response = render_error(err, request_id, scope["path"])
    response.raw_headers.append((b"x-request-id", request_id.encode()))
    response.raw_headers.append((b"date", date))
    exchange.response_headers = response.raw_headers
    exchange.response_body(bytes(response.body))
    await response(scope, receive, send)
