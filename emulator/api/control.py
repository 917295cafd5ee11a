"""The control plane under `/_emulator/`: health, reset, seed, clock, scenarios, journal, state.

With `--admin-token`, every control route but health needs `X-Emulator-Admin-Token: TOKEN` (or
`Authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator import control, wire
from emulator.api.http import JSON, core_of, json_body
from emulator.api.openapi import openapi_document
from emulator.clock import parse_instant
from emulator.errors import AdminTokenRequired, ValidationError
from emulator.journal import status_filter


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
    return await json_body(request) if await request.body() else {}


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


async def journal(request: Request) -> Response:
    admin(request)
    q = request.query_params
    wire.control_query("journal", list(q.keys()))
    problems: list[dict[str, Any]] = []

    def parsed(name: str, parse: Callable[[str], Any], expected: str) -> Any:
        if name not in q:
            return None
        try:
            return parse(q[name])
        except ValueError:
            problems.append({"field": name, "message": f"must be {expected}, got {q[name]!r}"})
            return None

    def positive(text: str) -> int:
        if int(text) < 1:
            raise ValueError(text)
        return int(text)

    def method(text: str) -> str:
        if not text.isalpha():
            raise ValueError(text)
        return text

    def path(text: str) -> str:
        if not text.startswith(("/", "*")):
            raise ValueError(text)
        return text

    def code(text: str) -> str:
        status_filter(text)  # raises on anything but 404 or 4xx
        return text

    status = parsed("status", code, "a status code (404) or a class (4xx)")
    since = parsed("since", lambda t: parse_instant(t).timestamp(), "an ISO-8601 instant")
    until = parsed("until", lambda t: parse_instant(t).timestamp(), "an ISO-8601 instant")
    limit = parsed("limit", positive, "an integer >= 1")
    verb = parsed("method", method, "an HTTP method (GET, POST, ...)")
    glob = parsed("path", path, "a path or a glob starting with / (/v1/inference/batch/*)")
    if "tenant_id" in q and not q["tenant_id"]:
        problems.append({"field": "tenant_id", "message": "must not be empty"})
    if problems:
        listed = "; ".join(f"'{p['field']}' {p['message']}" for p in problems)
        raise ValidationError(f"Invalid journal filter: {listed}.", details=problems)
    entries = core_of(request).journal.entries(
        method=verb, path=glob, status=status, tenant_id=q.get("tenant_id"),
        since=since, until=until, limit=limit,
    )  # fmt: skip
    return JSON(wire.ok({"items": entries}))


async def state(request: Request) -> Response:
    admin(request)
    core = core_of(request)
    wire.control_query("state", list(request.query_params.keys()))
    dump = await control.state(core, request.query_params.get("tenant_id"), str(request.base_url))
    return JSON(wire.ok(dump))


async def openapi(request: Request) -> Response:
    return JSON(openapi_document(core_of(request).version, request.app.routes))
