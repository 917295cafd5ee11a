"""Multipart uploads read as they arrive: the file part's bytes go straight on to the store.

Starlette's form parser spools a file part over 1 MiB to a temporary file (written through a
thread pool) and hands it over only when the whole body has been read, so every upload was
written to disk twice and read back once. Here the same push parser (python-multipart) runs over
the request stream, and the file part's bytes are yielded as the parser finds them: one pass, no
temporary file, memory bounded by what one read of the body brings.

`open_upload` reads up to the start of the file part (the text fields before it, and its file
name); `Upload.data` yields the file's bytes and then reads the rest of the body, so the fields
after the file are in `Upload.fields` once it is exhausted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from emulator.errors import ValidationError

#: the one file part an upload has
FILE_FIELD = "file"
MAX_FIELDS = 10
MAX_FIELD_BYTES = 64 * 1024


def _refused(message: str) -> ValidationError:
    return ValidationError(
        "Expected a multipart/form-data body with a 'file' field.",
        details=[{"field": FILE_FIELD, "message": message}],
    )


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class Upload:
    """One multipart body being read: its fields so far, the file's name, the file's bytes."""

    def __init__(self, request: Request) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._body = request.stream()
        self._parser = MultipartParser(_boundary(request), self._callbacks())
        self._found: list[bytes] = []  # file bytes the parser found, not yet yielded
        self._name = b""
        self._value = b""
        self._disposition = b""
        self._field: str | None = None  # the text part being read
        self._text = bytearray()
        self._in_file = False
        self._file_done = False
        self._ended = False

    def _callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    # --- parser callbacks (plain functions: the parser is synchronous) ---

    def _part_begin(self) -> None:
        self._disposition, self._field, self._text = b"", None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _refused('the Content-Disposition header field "name" must be provided')
        name = _text(options[b"name"])
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                raise _refused(f"too many fields (at most {MAX_FIELDS})")
            self._field = name
            return
        if name != FILE_FIELD:  # another file part: not part of an upload
            raise ValidationError(
                "Missing file.",
                details=[{"field": FILE_FIELD, "message": "a file part named 'file' is required"}],
            )
        if self.filename is not None:
            raise _refused("too many files (one file part, named 'file')")
        self.filename = _text(options[b"filename"])
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._found.append(data[start:end])
        elif self._field is not None:
            if len(self._text) + end - start > MAX_FIELD_BYTES:
                raise _refused(f"field '{self._field}' is over {MAX_FIELD_BYTES} bytes")
            self._text += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_done = False, True
        elif self._field is not None:
            self.fields[self._field] = _text(bytes(self._text))

    # --- reading ---

    async def _read(self) -> bool:
        """Feed the parser the next piece of the body; False once the body has ended."""
        if self._ended:
            return False
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._ended = True
            self._finish()
            return False
        try:
            self._parser.write(chunk)
        except ValidationError:
            raise
        except Exception as exc:  # the parser's errors carry no common base class
            raise _refused(str(exc) or type(exc).__name__) from None
        return True

    def _finish(self) -> None:
        try:
            self._parser.finalize()
        except Exception as exc:
            raise _refused(str(exc) or type(exc).__name__) from None
        if self._in_file or self._field is not None and self._field not in self.fields:
            raise _refused("the body ended inside a part")

    async def start(self) -> None:
        """Read up to the file part's data: its name and the fields before it are known."""
        while self.filename is None and await self._read():
            pass
        if self.filename is None:
            raise ValidationError(
                "Missing file.",
                details=[{"field": FILE_FIELD, "message": "a file part named 'file' is required"}],
            )

    async def data(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive, then the rest of the body (its later fields)."""
        while True:
            if self._found:
                found, self._found = self._found, []
                yield b"".join(found) if len(found) > 1 else found[0]
            if self._file_done:
                break
            if not await self._read():
                break
        while await self._read():
            pass


def _boundary(request: Request) -> bytes:
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise _refused("no Content-Type header")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise _refused(f"Content-Type is {kind.decode('latin-1') or 'empty'}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise _refused("no boundary in the Content-Type")
    return boundary


async def open_upload(request: Request) -> Upload:
    upload = Upload(request)
    await upload.start()
    return upload
