"""File routes: multipart upload (streamed), list, get, content, delete."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, Stream, caller, core_of
from emulator.api.upload import open_upload
from emulator.batch.files import PURPOSES
from emulator.errors import ValidationError
from emulator.records import FileRecord
from emulator.schema import Param, enum, obj, string

LIST_QUERY = (*wire.PAGED, Param("purpose", enum(PURPOSES), "only files with this purpose"))
#: the multipart form of an upload: the file, and its purpose (`batch` when not given)
FORM = obj(
    {"file": string(contentMediaType="application/octet-stream")},
    {"purpose": enum(PURPOSES)},
    extra=True,
)


def _purpose(value: object) -> str:
    purpose = "batch" if value is None else value
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise ValidationError(
            "Invalid purpose.",
            details=[{"field": "purpose", "message": f"must be one of {', '.join(PURPOSES)}"}],
        )
    return purpose


async def create_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    record = await receive_upload(request, principal.tenant_id, _purpose)
    return JSON(wire.ok(wire.file(record)))


async def receive_upload(
    request: Request, tenant_id: str, purpose_of: Callable[[object], str]
) -> FileRecord:
    """Store the multipart upload of a request (the part `file`, and `purpose` as `purpose_of`
    reads it); both surfaces upload through here. The file's bytes go to the store as they
    arrive (`emulator.api.upload`); a `purpose` sent before the file is checked before anything
    is stored, one sent after it once the file is in, and a refused one leaves nothing behind."""
    files = core_of(request).files
    upload = await open_upload(request)
    if "purpose" in upload.fields:
        purpose_of(upload.fields["purpose"])
    content = await files.store_content(upload.data())
    try:
        purpose = purpose_of(upload.fields.get("purpose"))
    except BaseException:
        await files.discard(content)
        raise
    return await files.add_file(tenant_id, upload.filename or "upload.jsonl", purpose, content)


async def list_files(request: Request) -> Response:
    principal = caller(request, "models:use")
    q = request.query_params
    rows, more = await core_of(request).files.list_files(
        principal.tenant_id,
        wire.parse_limit(q.get("limit")),
        wire.decode_cursor(q.get("cursor")),
        _purpose(q["purpose"]) if "purpose" in q else None,
    )
    return JSON(wire.seq_page([wire.file(f) for f in rows], rows, more))


async def get_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    f = await core_of(request).files.get_file(principal.tenant_id, request.path_params["file_id"])
    return JSON(wire.ok(wire.file(f)))


async def get_file_content(request: Request) -> Response:
    principal = caller(request, "models:use")
    files = core_of(request).files
    f = await files.get_file(principal.tenant_id, request.path_params["file_id"])
    return Stream(
        files.content(f),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(f.bytes),
            "Content-Disposition": attachment(f.filename),
        },
    )


def attachment(filename: str) -> str:
    """RFC 6266: a printable-ASCII `filename` for old clients, the exact name in `filename*`
    (a header must be Latin-1, so a raw non-ASCII name cannot go in it)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def delete_file(request: Request) -> Response:
    principal = caller(request, "models:use")
    f = await core_of(request).files.delete_file(
        principal.tenant_id, request.path_params["file_id"]
    )
    return JSON(wire.ok({"id": f.id, "object": "file", "deleted": True}))
