"""File routes: multipart upload (streamed), list, get, content, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from emulator import wire
from emulator.api.http import JSON, Stream, caller, core_of
from emulator.batch.files import CHUNK_BYTES, PURPOSES
from emulator.errors import ValidationError
from emulator.records import FileRecord


async def _read(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


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
    """Store the multipart upload of a request (field `file`, and `purpose` as `purpose_of`
    reads it); both surfaces upload through here."""
    # Starlette spools multipart parts over 1 MiB to a temporary file, so a large upload is never
    # held in memory; it is then copied into the store chunk by chunk.
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:  # the multipart parser's errors carry no common base class
        raise ValidationError(
            "Expected a multipart/form-data body with a 'file' field.",
            details=[{"field": "file", "message": str(exc) or type(exc).__name__}],
        ) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationError(
                "Missing file.",
                details=[{"field": "file", "message": "a file part named 'file' is required"}],
            )
        return await core_of(request).files.create_file(
            tenant_id,
            upload.filename or "upload.jsonl",
            purpose_of(form.get("purpose")),
            _read(upload),
        )
    finally:
        await form.close()  # removes the spooled temporary files


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
