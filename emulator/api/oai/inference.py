"""OpenAI inference and model routes: the engine the native routes use, in OpenAI's shapes."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire_oai
from emulator.api.http import JSON, Stream, caller, core_of, parse_object, read_body
from emulator.api.inference import sse
from emulator.endpoints import CHAT, EMBED, GENERATE


async def chat_completions(request: Request) -> Response:
    core = core_of(request)
    principal = caller(request, "models:use", core)
    raw = await read_body(request)
    body = parse_object(raw)
    if body.get("stream") is True:
        chunks = await core.live.stream_answer(body, principal.tenant_id)
        return Stream(sse(chunks), media_type="text/event-stream")
    answer = await core.live.answer(CHAT, body, principal.tenant_id, None, raw)
    return JSON(wire_oai.chat_completion(answer))


async def completions(request: Request) -> Response:
    core = core_of(request)
    principal = caller(request, "models:use", core)
    raw = await read_body(request)
    answer = await core.live.answer(GENERATE, parse_object(raw), principal.tenant_id, None, raw)
    return JSON(wire_oai.completion(answer))


async def embeddings(request: Request) -> Response:
    core = core_of(request)
    principal = caller(request, "models:use", core)
    raw = await read_body(request)
    return JSON(await core.live.answer(EMBED, parse_object(raw), principal.tenant_id, None, raw))


async def list_models(request: Request) -> Response:
    caller(request, "models:list")
    return JSON(wire_oai.models(core_of(request).catalogue.list()))


async def get_model(request: Request) -> Response:
    caller(request, "models:list")
    # the SDK percent-encodes the id (`openai%2Fgpt-4o`); literal slashes are served too
    model = core_of(request).catalogue.get(unquote(request.path_params["model"]))
    return JSON(wire_oai.model(model))
