"""HTTP plumbing shared by every route: JSON responses, body parsing, the request context
middleware (request id, journal, last-resort error envelope) and the one error renderer."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator import wire, wire_oai
from emulator.api.openapi import template
from emulator.endpoints import OAI_PREFIX
from emulator.errors import (
    EmulatorError,
    InternalError,
    MethodNotAllowed,
    RouteNotFound,
    ValidationError,
)
from emulator.journal import Exchange, redact_path
from emulator.metrics import UNMATCHED
from emulator.tenancy import Principal

if TYPE_CHECKING:
    from emulator.core import Emulator

log = logging.getLogger("emulator")


_JSON_TYPE = b"application/json"


class JSON(Response):
    """A JSON response rendered with orjson (several times faster than the stdlib encoder)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # The usual answer (200, no extra headers) gets the two headers Starlette would derive,
        # in its order, without its general-case work; anything else goes the general way.
        if headers is None and self.status_code == 200:
            length = str(len(self.body)).encode()
            self.raw_headers = [(b"content-length", length), (b"content-type", _JSON_TYPE)]
        else:
            super().init_headers(headers)


class Stream(StreamingResponse):
    """A body sent as its async iterator yields it (results, file content, an SSE answer).

    Starlette's StreamingResponse watches for the client leaving in a task group beside the
    stream, under the ASGI spec uvicorn declares (2.3). That costs a task group per response and,
    on a server's first stream, importing anyio's asyncio backend (~35 ms, which a first results
    download paid). Every stream here ends by itself: results and file content are finite, and an
    SSE answer is computed before it starts. A client that leaves mid-stream makes the server's
    later sends no-ops (uvicorn drops them), so the stream runs out at its end instead.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError:  # a server on ASGI 2.4 raises when the client has gone
            raise ClientDisconnect() from None


class ConnectionDropped(ConnectionResetError):
    """A scenario's transport fault dropped the connection (`emulator.api.transport`): `reset`
    before any byte, or closed mid-answer. On a socket the connection is already gone
    (`on_socket`) and the request context ends the exchange quietly; in process there is no
    socket, and this goes on to the client as what it gets instead of an answer."""

    def __init__(self, message: str, *, reset: bool, on_socket: bool = False) -> None:
        super().__init__(message)
        self.reset = reset
        self.on_socket = on_socket


def core_of(request: Request) -> Emulator:
    core: Emulator = request.app.state.core
    return core


def authorization(scope: Scope) -> str | None:
    """The Authorization header, read straight from the scope (no Headers object needed)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


def caller(request: Request, permission: str, core: Emulator | None = None) -> Principal:
    """Authenticate the request and check the permission its route needs. A route that needs the
    core anyway passes it: finding it through the app's state costs a few attribute lookups."""
    scope = request.scope
    principal = (core or core_of(request)).tenancy.authenticate(authorization(scope))
    scope["state"]["tenant_id"] = principal.tenant_id
    principal.require(permission)
    return principal


#: the most a body read whole may have (every JSON body, a post to a webhook sink): twice the
#: largest a client needs, a batch submit's inline input (at most 10 MB decoded, about 13.4 MiB
#: as base64), so an inline input a little over its limit still gets that limit's own message.
#: Past this a body is refused as it arrives, before it is held. Uploads stream, with their limit.
MAX_BODY_BYTES = 32 * 1024 * 1024


def body_too_large() -> ValidationError:
    return ValidationError(
        f"Request body is over {MAX_BODY_BYTES} bytes.",
        details=[
            {
                "field": "body",
                "message": f"over {MAX_BODY_BYTES} bytes; send a large input as a file upload",
            }
        ],
    )


async def read_body(request: Request) -> bytes:
    """The body of a request nothing has read yet, straight from its ASGI messages.

    Starlette's `request.body()` reads through an async generator, which costs several times more
    than the body of a small request takes to arrive; the inference routes read their body once,
    first thing, so they can take the messages directly. A disconnect raises as Starlette's does.
    """
    return await receive_body(request.receive)


async def receive_body(receive: Receive) -> bytes:
    """The whole body from the ASGI messages (`read_body`, for a caller with no Request); past
    `MAX_BODY_BYTES` a 422, with no more of it read."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise body_too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def replayed(body: bytes, receive: Receive) -> Receive:
    """`receive` giving a body already read again first, as one message: for an app that reads
    a request before it hands it on (the fast path to the general one, a transport fault to the
    answer it spoils)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 422 that says what is wrong with it."""
    return parse_object(await read_body(request))


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            "Request body is not valid JSON.",
            details=[{"field": "body", "message": f"invalid JSON at byte {exc.pos}: {exc.msg}"}],
        ) from None
    if not isinstance(body, dict):
        raise ValidationError(
            "Request body must be a JSON object.",
            details=[
                {
                    "field": "body",
                    "message": f"got a JSON {type(body).__name__}, expected an object",
                }
            ],
        )
    return body


def render_error(err: EmulatorError, request_id: str, path: str = "") -> Response:
    """The one error renderer: ScaiGrid's envelope, or OpenAI's error body and status code on
    the OpenAI surface (`path` under `/oai/`). Both carry `Retry-After` when the error has one."""
    headers = {**err.headers}
    if err.retry_after is not None:
        headers.setdefault("Retry-After", str(err.retry_after))
    if path.startswith(OAI_PREFIX + "/"):
        status = wire_oai.status_of(err.status)
        return JSON(wire_oai.error(err), status_code=status, headers=headers)
    return JSON(wire.error(err, request_id), status_code=err.status, headers=headers)


async def on_emulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return render_error(exc, request.scope["state"]["request_id"], request.url.path)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's router raises HTTPException for unknown routes and wrong methods."""
    assert isinstance(exc, HTTPException)
    err: EmulatorError
    if exc.status_code == 405:
        err = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
        err.headers = {"Allow": ", ".join(_allowed_methods(request))}
    elif exc.status_code == 404:
        err = RouteNotFound(f"No route {request.method} {request.url.path}.")
    else:
        err = EmulatorError(str(exc.detail), status=exc.status_code, code="BAD_REQUEST")
    return render_error(err, request.scope["state"]["request_id"], request.url.path)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path: a path can be several routes (one per method),
    and Starlette's own `Allow` names only the first one that matched."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


#: the header the dashboard's reads carry (see `_dashboard_read`)
DASHBOARD_HEADER = b"x-emulator-dashboard"


def _dashboard_read(scope: Scope) -> bool:
    """The dashboard's own traffic is not journaled: its files, and its reads of the control
    plane (a GET that carries `X-Emulator-Dashboard`). A page left open polls every second, and
    would otherwise push the clients' requests out of the journal and move the change mark it
    polls. What it does (advance, cancel, reset) is journaled like any control call."""
    path: str = scope["path"]
    if not path.startswith("/_emulator/"):
        return False
    if path == "/_emulator/ui" or path.startswith("/_emulator/ui/"):
        return True
    return scope["method"] == "GET" and any(n == DASHBOARD_HEADER for n, _ in scope["headers"])


class RouteNames:
    """The template of the route a request went to, the label its metrics are counted under.

    The router leaves the route's endpoint in the scope, so the usual answer is one lookup; a
    request answered before routing (a scenario's fault) or by no route is matched here."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = [r for r in routes if isinstance(r, Route)]
        self.by_endpoint: dict[object, str] = {r.endpoint: template(r.path) for r in self.routes}

    def of(self, scope: Scope) -> str:
        name = self.by_endpoint.get(scope.get("endpoint"))
        if name is not None:
            return name
        partial = UNMATCHED
        for route in self.routes:
            match = route.matches(scope)[0]
            if match == Match.FULL:
                return self.by_endpoint[route.endpoint]
            if match == Match.PARTIAL and partial == UNMATCHED:
                partial = self.by_endpoint[route.endpoint]  # a method the path does not take
        return partial


class RequestContext:
    """Outermost middleware: gives each request an id, answers `X-Request-ID`, journals and
    counts the exchange, and turns any unexpected exception into `INTERNAL_ERROR` in the
    envelope."""

    def __init__(self, app: ASGIApp, core: Emulator, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.core = core
        self.names = RouteNames(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        core = self.core
        state = scope.setdefault("state", {})
        # a request the fast path hands over (`emulator.api.fast`) already has its id
        request_id = state.get("request_id") or core.ids.request_id()
        state["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        date = (b"date", core.clock.http_date())
        status = 500
        started = False
        # the journal keeps references to what passes by (no copies): see emulator.journal
        exchange = Exchange(scope["headers"])

        async def receive_tapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.request_body(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.body":
                exchange.response_body(message.get("body", b""))
            elif message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = exchange.response_headers = [
                    *message.get("headers", ()),
                    header,
                    date,
                ]
            await send(message)

        try:
            await self.app(scope, receive_tapped, send_with_id)
        except ConnectionDropped as exc:  # journaled with the status sent, 0 if none was
            status = status if started else 0
            if not exc.on_socket:
                raise
        except Exception as exc:  # the last line of defence: never a bare 500 with a trace
            # (a path may name a tenant by its key: masked as the journal shows it)
            log.exception("unhandled error on %s %s", scope["method"], redact_path(scope["path"]))
            if started:
                raise
            status = 500
            response = render_error(
                InternalError(f"Internal error ({type(exc).__name__})."), request_id, scope["path"]
            )
            await response(scope, receive_tapped, send_with_id)
        finally:
            if not _dashboard_read(scope):
                core.journal.record(scope, status, state.get("tenant_id"), request_id, exchange)
            core.metrics.request(self.names.of(scope), scope["method"], status)
