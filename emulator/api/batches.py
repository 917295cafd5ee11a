"""Batch routes: submit, list, status, cancel, and the pre-signed results download."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, Stream, caller, core_of, json_body
from emulator.schema import Param, enum
from emulator.status import BatchStatus

LIST_QUERY = (
    *wire.PAGED,
    Param("status", enum(s.value for s in BatchStatus), "only batches with this status"),
)


def _base(request: Request) -> str:
    return str(request.base_url)


async def create_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    body = await json_body(request)
    core = core_of(request)
    scenario = request.headers.get("x-emulator-scenario")
    batch = await core.batches.create_batch(principal.tenant_id, body, scenario, _base(request))
    return JSON(wire.ok(core.batches.to_wire(batch, _base(request))))


async def list_batches(request: Request) -> Response:
    principal = caller(request, "models:use")
    core = core_of(request)
    q = request.query_params
    rows, more = await core.batches.list_batches(
        principal.tenant_id,
        limit=wire.parse_limit(q.get("limit")),
        before_seq=wire.decode_cursor(q.get("cursor")),
        status=q.get("status"),
    )
    return JSON(wire.seq_page([core.batches.to_wire(b, _base(request)) for b in rows], rows, more))


async def get_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    core = core_of(request)
    batch = await core.batches.get_batch(principal.tenant_id, request.path_params["batch_id"])
    return JSON(wire.ok(core.batches.to_wire(batch, _base(request))))


async def cancel_batch(request: Request) -> Response:
    principal = caller(request, "models:use")
    core = core_of(request)
    batch = await core.batches.cancel_batch(principal.tenant_id, request.path_params["batch_id"])
    return JSON(wire.ok(core.batches.to_wire(batch, _base(request))))


async def get_results(request: Request) -> Response:
    """No Authorization: the link's signature and expiry (emulator clock) are the credential."""
    q = request.query_params
    batches = core_of(request).batches
    batch_id = request.path_params["batch_id"]
    batch = await batches.results_batch(batch_id)
    if batch is not None:  # the journal (and the verdict) count the download as its owner's
        request.scope["state"]["tenant_id"] = batch.tenant_id
    stream = batches.open_results(
        batch, batch_id, request.url.path, q.get("expires"), q.get("signature")
    )
    return Stream(stream, media_type="application/jsonl")
