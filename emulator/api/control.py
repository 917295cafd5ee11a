"""The control plane under `/_emulator/`: health, reset, seed, clock, scenarios, journal, verdict,
state.

With `--admin-token`, every control route but health needs `X-Emulator-Admin-Token: TOKEN` (or
`Authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator import control, wire, wire_control
from emulator.api.http import JSON, core_of, json_body, parse_object, read_body
from emulator.api.openapi import openapi_document
from emulator.clock import parse_instant
from emulator.errors import AdminTokenRequired, ValidationError
from emulator.journal import status_filter
from emulator.verdict import Thresholds


def admin(request: Request) -> None:
    token = core_of(request).settings.admin_token
    if token is None:
        return
    given = request.headers.get("x-emulator-admin-token")
    if given is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value if scheme.lower() == "bearer" else None
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        raise AdminTokenRequired()


async def _body(request: Request) -> dict[str, object]:
    raw = await read_body(request)
    return parse_object(raw) if raw else {}


def _tenant(request: Request) -> str:
    """The tenant the path names: a tenant id, or an API key resolved to its tenant."""
    return control.tenant_path(core_of(request), request.path_params["tenant"])


async def health(request: Request) -> Response:
    return JSON(wire.ok(control.health(core_of(request))))


async def reset(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(await control.reset(core_of(request), await _body(request))))


async def get_clock(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(core_of(request).clock.to_dict()))


async def set_clock(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(await control.set_clock(core_of(request), await json_body(request))))


async def advance_clock(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(await control.advance_clock(core_of(request), await json_body(request))))


async def get_seed(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok({"seed": core_of(request).settings.seed}))


async def set_seed(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(control.set_seed(core_of(request), await json_body(request))))


async def list_scenarios(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(control.list_scenarios(core_of(request))))


async def get_scenario(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(control.describe(core_of(request).scenarios.global_scenario)))


async def set_scenario(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    scenario = control.scenario_from(core, await json_body(request))
    await control.set_global_scenario(core, scenario)
    return JSON(wire.ok(control.describe(scenario)))


async def get_tenant_scenario(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    return JSON(wire.ok(control.describe(core.scenarios.for_tenant(_tenant(request)))))


async def set_tenant_scenario(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    scenario = control.scenario_from(core, await json_body(request))
    await control.set_tenant_scenario(core, _tenant(request), scenario)
    return JSON(wire.ok(control.describe(scenario)))


async def delete_tenant_scenario(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    await control.set_tenant_scenario(core, _tenant(request), None)
    return JSON(wire.ok(control.describe(core.scenarios.global_scenario)))


async def get_tenant(request: Request) -> Response:
    admin(request)
    return JSON(wire.ok(control.tenant_info(core_of(request), request.path_params["tenant"])))


class _Query:
    """A control route's query parameters, each parsed on demand; every bad one is collected so
    that the 422 names them all at once."""

    def __init__(self, request: Request, route: str) -> None:
        self.params = request.query_params
        wire_control.control_query(route, list(self.params.keys()))
        #: what each parameter must be, as its declaration (and the OpenAPI document) says
        self.expected = {
            param.name: param.description for param in wire_control.CONTROL_QUERIES[route]
        }
        self.problems: list[dict[str, Any]] = []

    def get(self, name: str, parse: Callable[[str], Any]) -> Any:
        if name not in self.params:
            return None
        try:
            return parse(self.params[name])
        except ValueError:
            got, expected = self.params[name], self.expected[name]
            self.problems.append({"field": name, "message": f"must be {expected}, got {got!r}"})
            return None

    def check(self, what: str) -> None:
        if self.problems:
            listed = "; ".join(f"'{p['field']}' {p['message']}" for p in self.problems)
            raise ValidationError(f"Invalid {what}: {listed}.", details=self.problems)


def _at_least(low: float, kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        # also refuses nan, and inf (which no JSON answer can carry back); and an integer past
        # 64 bits, which neither SQLite nor the answer's JSON can hold
        if not low <= value <= wire.MAX_SEQ:
            raise ValueError(text)
        return value

    return parse


def _between(low: int, high: int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return parse


def _instant(text: str) -> float:
    return parse_instant(text).timestamp()


def _method(text: str) -> str:
    if not text.isalpha():
        raise ValueError(text)
    return text


def _path(text: str) -> str:
    if not text.startswith(("/", "*")):
        raise ValueError(text)
    return text


def _status(text: str) -> str:
    status_filter(text)  # raises on anything but a code (404) or a class (4xx)
    return text


def _tenant_id(text: str) -> str:
    if not text:
        raise ValueError(text)
    return text


async def journal(request: Request) -> Response:
    admin(request)
    q = _Query(request, "journal")
    status = q.get("status", _status)
    since = q.get("since", _instant)
    until = q.get("until", _instant)
    limit = q.get("limit", _at_least(1, int))
    method = q.get("method", _method)
    path = q.get("path", _path)
    tenant_id = q.get("tenant_id", _tenant_id)
    q.check("journal filter")
    entries = core_of(request).journal.entries(
        method=method, path=path, status=status, tenant_id=tenant_id,
        since=since, until=until, limit=limit,
    )  # fmt: skip
    return JSON(wire.ok({"items": entries}))


async def verdict(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    q = _Query(request, "verdict")
    defaults = control.default_thresholds(core)
    interval = q.get("min_poll_interval", _at_least(0, float))
    limit = q.get("rate_limit", _at_least(1, int))
    tenant_id = q.get("tenant_id", _tenant_id)
    q.check("verdict query")
    thresholds = Thresholds(
        defaults.min_poll_interval if interval is None else interval,
        defaults.rate_limit if limit is None else limit,
    )
    return JSON(wire.ok(await control.judge(core, tenant_id, thresholds)))


async def state(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    wire_control.control_query("state", list(request.query_params.keys()))
    dump = await control.state(core, request.query_params.get("tenant_id"), str(request.base_url))
    return JSON(wire.ok(dump))


def _line_status(text: str) -> str:
    if text not in control.LINE_STATUSES:
        raise ValueError(text)
    return text


async def tenant_batch_lines(request: Request) -> Response:
    """A page of any tenant's batch: its request lines with their results and error records."""
    admin(request)
    q = _Query(request, "tenants/{tenant}/batches/{batch_id}/lines")
    offset = q.get("offset", _at_least(0, int))
    limit = q.get("limit", _between(1, control.MAX_LINES))
    status = q.get("status", _line_status)
    q.check("batch lines query")
    core = core_of(request)
    page = await control.batch_lines(
        core, _tenant(request), request.path_params["batch_id"], offset or 0, limit or 100, status
    )
    return JSON(wire.ok(page))


async def cancel_tenant_batch(request: Request) -> Response:
    """Cancel any tenant's batch, as its owner's cancel would."""
    admin(request)
    wire_control.control_body("tenants/{tenant}/batches/{batch_id}/cancel", await _body(request))
    core = core_of(request)
    batch = await core.batches.cancel_batch(_tenant(request), request.path_params["batch_id"])
    return JSON(wire.ok(core.batches.to_wire(batch, str(request.base_url))))


async def tenant_webhook_deliveries(request: Request) -> Response:
    """Any tenant's webhook's deliveries, newest first."""
    admin(request)
    q = _Query(request, "tenants/{tenant}/webhooks/{webhook_id}/deliveries")
    limit = q.get("limit", _between(1, wire.MAX_LIMIT))
    q.check("deliveries query")
    rows, _ = await core_of(request).webhooks.deliveries(
        _tenant(request), request.path_params["webhook_id"], limit=limit or wire.DEFAULT_LIMIT,
        before_seq=None, status=request.query_params.get("status"), since=None,
    )  # fmt: skip
    return JSON(wire.ok({"items": [wire.delivery(d) for d in rows]}))


async def changes(request: Request) -> Response:
    """What the dashboard polls: cheap, and not journaled when the dashboard asks."""
    admin(request)
    wire_control.control_query("changes", list(request.query_params.keys()))
    return JSON(wire.ok(control.changes(core_of(request))))


async def openapi(request: Request) -> Response:
    return JSON(openapi_document(core_of(request).version, request.app.routes))
