"""Live inference routes: chat (plain and SSE), generate, embed, images, and image content."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, Stream, caller, core_of, parse_object, read_body
from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE, IMAGES
from emulator.errors import ResultsUrlInvalid
from emulator.inference.images import png_named

#: what a caller's key must allow to use the inference routes
PERMISSION = "models:use"


async def _infer(request: Request, route: str) -> Response:
    core = core_of(request)
    principal = caller(request, PERMISSION, core)
    raw = await read_body(request)
    body = parse_object(raw)
    if route == CHAT and body.get("stream") is True:
        chunks = await core.live.stream_answer(body, principal.tenant_id)
        return Stream(sse(chunks), media_type="text/event-stream")
    base = str(request.base_url) if ENDPOINTS[route].links else None
    return JSON(wire.ok(await core.live.answer(route, body, principal.tenant_id, base, raw)))


async def chat(request: Request) -> Response:
    return await _infer(request, CHAT)


async def sse(chunks: list[dict[str, object]]) -> AsyncIterator[bytes]:
    # Chunks are computed (and validated) before the response starts, so a bad request is a
    # normal 4xx envelope, never an error half-way through a 200 stream.
    for chunk in chunks:
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def generate(request: Request) -> Response:
    return await _infer(request, GENERATE)


async def embed(request: Request) -> Response:
    return await _infer(request, EMBED)


async def images_generate(request: Request) -> Response:
    return await _infer(request, IMAGES)


async def image_content(request: Request) -> Response:
    """A pre-signed image link: no Authorization header, expiry on the emulator clock."""
    core = core_of(request)
    core.signer.verify(  # the path names the image and its size, so both are signed
        request.url.path,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
        core.clock.now(),
    )
    png = png_named(request.path_params["digest"])
    if png is None:  # signed, yet not a name links are minted with: not ours to serve
        raise ResultsUrlInvalid()
    return Response(png, media_type="image/png")


#: the handler of each inference endpoint
HANDLERS = {CHAT: chat, GENERATE: generate, EMBED: embed, IMAGES: images_generate}
