"""OpenAI batch routes: create, list, retrieve and cancel, over the one batch store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire_oai
from emulator.api.http import JSON, caller, core_of, json_body

LIST_QUERY = (wire_oai.AFTER, wire_oai.limit_param(wire_oai.BATCHES_LIMIT))


async def create_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    body = await json_body(request)
    b, facts = await core_of(request).oai.create_batch(
        principal.tenant_id,
        body,
        request.headers.get("x-emulator-scenario"),
        str(request.base_url),
    )
    return JSON(wire_oai.batch(b, facts))


async def list_batches(request: Request) -> Response:
    principal = caller(request, "models:use")
    q = request.query_params
    rows, more = await core_of(request).oai.list_batches(
        principal.tenant_id,
        after=q.get("after"),
        limit=wire_oai.parse_limit(q.get("limit"), wire_oai.BATCHES_LIMIT),
    )
    return JSON(wire_oai.page([wire_oai.batch(b, facts) for b, facts in rows], more))


async def get_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    b, facts = await core_of(request).oai.get_batch(
        principal.tenant_id, request.path_params["batch_id"]
    )
    return JSON(wire_oai.batch(b, facts))


async def cancel_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    b, facts = await core_of(request).oai.cancel_batch(
        principal.tenant_id, request.path_params["batch_id"]
    )
    return JSON(wire_oai.batch(b, facts))
