"""OpenAI file routes: upload, list, retrieve, content and delete, over the one file store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire_oai
from emulator.api.files import attachment, receive_upload
from emulator.api.http import JSON, Stream, caller, core_of
from emulator.batch.oai import ORDERS, UPLOAD_PURPOSES
from emulator.errors import ValidationError
from emulator.schema import Param, enum, obj, string

LIST_QUERY = (
    wire_oai.AFTER,
    wire_oai.limit_param(wire_oai.FILES_LIMIT),
    Param("order", enum(ORDERS, description="by created_at"), "asc or desc (default desc)"),
    Param("purpose", string(), "only files with this purpose"),
)
#: the multipart form of an upload: OpenAI requires the purpose
FORM = obj(
    {"file": string(contentMediaType="application/octet-stream"), "purpose": enum(UPLOAD_PURPOSES)},
    extra=True,
)


def _purpose(value: object) -> str:
    """OpenAI requires a purpose, one of its upload purposes."""
    if not isinstance(value, str) or value not in UPLOAD_PURPOSES:
        raise ValidationError(
            "Invalid purpose.",
            details=[
                {"field": "purpose", "message": f"must be one of {', '.join(UPLOAD_PURPOSES)}"}
            ],
        )
    return value


async def create_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    record = await receive_upload(request, principal.tenant_id, _purpose)
    return JSON(wire_oai.file(record))


async def list_files(request: Request) -> Response:
    principal = caller(request, "models:use")
    q = request.query_params
    rows, more = await core_of(request).oai.list_files(
        principal.tenant_id,
        after=q.get("after"),
        limit=wire_oai.parse_limit(q.get("limit"), wire_oai.FILES_LIMIT),
        order=q.get("order", "desc"),
        purpose=q.get("purpose"),
    )
    return JSON(wire_oai.page([wire_oai.file(f) for f in rows], more))


async def get_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    f = await core_of(request).oai.get_file(principal.tenant_id, request.path_params["file_id"])
    return JSON(wire_oai.file(f))


async def get_file_content(request: Request) -> Response:
    principal = caller(request, "models:use")
    f, stream = await core_of(request).oai.content(
        principal.tenant_id, request.path_params["file_id"]
    )
    return Stream(
        stream,
        media_type="application/octet-stream",
        headers={"Content-Length": str(f.bytes), "Content-Disposition": attachment(f.filename)},
    )


async def delete_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    file_id = request.path_params["file_id"]
    await core_of(request).oai.delete_file(principal.tenant_id, file_id)
    return JSON(wire_oai.file_deleted(file_id))
