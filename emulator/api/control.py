"""The control plane under `/_emulator/`: health, reset, seed, clock, scenarios, journal, state.

With `--admin-token`, every control route but health needs `X-Emulator-Admin-Token: TOKEN` (or
`Authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from emulator import control, wire
from emulator.api.http import JSON, core_of, json_body
from emulator.api.openapi import openapi_document
from emulator.clock import parse_instant
from emulator.errors import AdminTokenRequired, ValidationError


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
    try:
        status = int(q["status"]) if "status" in q else None
        since = parse_instant(q["since"]).timestamp() if "since" in q else None
        limit = int(q["limit"]) if "limit" in q else None
        if limit is not None and limit < 1:
            raise ValueError("limit must be positive")
    except ValueError:
        raise ValidationError(
            "Invalid journal filter.",
            details=[
                {"message": "status and limit (>= 1) are integers, since an ISO-8601 instant"}
            ],
        ) from None
    entries = core_of(request).journal.entries(
        method=q.get("method"), path=q.get("path"), status=status,
        tenant_id=q.get("tenant_id"), since=since, limit=limit,
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
