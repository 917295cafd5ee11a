"""Webhook routes: register, list, read, update, delete, test, deliveries (`webhooks:manage`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, caller, core_of, json_body
from emulator.schema import Param, enum, string
from emulator.webhooks.policy import DELIVERY_STATUSES

PERMISSION = "webhooks:manage"
DELIVERIES_QUERY = (
    Param("status", enum(DELIVERY_STATUSES), "only deliveries with this status"),
    Param("since", string(format="date-time"), "only deliveries created at or after this instant"),
    *wire.PAGED,
)


def _id(request: Request) -> str:
    return str(request.path_params["webhook_id"])


async def create_webhook(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    body = await json_body(request)
    w = await core_of(request).webhooks.create(principal, body)
    return JSON(wire.ok(wire.webhook(w)))


async def list_webhooks(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    q = request.query_params
    rows, more = await core_of(request).webhooks.list_webhooks(
        principal.tenant_id, wire.parse_limit(q.get("limit")), wire.decode_cursor(q.get("cursor"))
    )
    return JSON(wire.seq_page([wire.webhook(w) for w in rows], rows, more))


async def get_webhook(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    w = await core_of(request).webhooks.get(principal.tenant_id, _id(request))
    return JSON(wire.ok(wire.webhook(w)))


async def update_webhook(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    body = await json_body(request)
    w = await core_of(request).webhooks.update(principal.tenant_id, _id(request), body)
    return JSON(wire.ok(wire.webhook(w)))


async def delete_webhook(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    w = await core_of(request).webhooks.delete(principal.tenant_id, _id(request))
    return JSON(wire.ok({"id": w.id, "object": "webhook", "deleted": True}))


async def test_webhook(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    d = await core_of(request).webhooks.test(principal.tenant_id, _id(request))
    return JSON(wire.ok(wire.test_delivery(d)))


async def list_deliveries(request: Request) -> Response:
    principal = caller(request, PERMISSION)
    q = request.query_params
    rows, more = await core_of(request).webhooks.deliveries(
        principal.tenant_id,
        _id(request),
        limit=wire.parse_limit(q.get("limit")),
        before_seq=wire.decode_cursor(q.get("cursor")),
        status=q.get("status"),
        since=q.get("since"),
    )
    return JSON(wire.seq_page([wire.delivery(d) for d in rows], rows, more))
