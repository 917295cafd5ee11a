"""Model catalogue routes."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, caller, core_of
from emulator.errors import ValidationError
from emulator.inference.catalogue import MODALITIES, STATUSES
from emulator.schema import Param, enum

LIST_QUERY = (
    Param("modality", enum(MODALITIES), "only models of this modality"),
    Param("status", enum(STATUSES), "only models with this status"),
    *wire.PAGED,
)


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ValidationError(
            f"Invalid {name}.",
            details=[{"field": name, "message": f"must be one of {', '.join(allowed)}"}],
        )
    return value


async def list_models(request: Request) -> Response:
    caller(request, "models:list")
    models = core_of(request).catalogue.list(
        modality=_choice(request, "modality", MODALITIES),
        status=_choice(request, "status", STATUSES),
    )
    limit = wire.parse_limit(request.query_params.get("limit"))
    start = wire.decode_cursor(request.query_params.get("cursor")) or 0
    chunk = models[start : start + limit]
    more = start + limit < len(models)
    cursor = wire.encode_cursor(start + limit) if more else None
    return JSON(wire.page([wire.model(m) for m in chunk], more, cursor))


async def get_model(request: Request) -> Response:
    caller(request, "models:list")
    # The slug arrives URL-encoded (`openai%2Fgpt-4o`); the router has already matched the raw
    # path, so decode here. A client that sends literal slashes is served too.
    slug = unquote(request.path_params["slug"])
    return JSON(wire.ok(wire.model(core_of(request).catalogue.get(slug))))
