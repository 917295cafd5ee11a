"""The request journal: what each request was and how it was answered, kept in memory.

Recording is a tuple append on the hot path; the dicts are built only when someone reads. An entry
also holds the exchange (`Exchange`): the request and response headers and bodies, each body kept
up to `BODY_CAP` bytes (the rest is counted, not kept). Secrets are redacted once, off the live
path, the first time the entry is read or saved (`Exchange.view`): after that only the redacted
form is kept, and only the redacted form is ever stored or shown.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from emulator.clock import iso

_FIELDS = ("time", "method", "path", "query", "status", "tenant_id", "request_id")

#: how much of each body an entry keeps
BODY_CAP = 64 * 1024

REDACTED = "[redacted]"
_KEY = re.compile(rb"sgk_[A-Za-z0-9_\-]+")
_SECRET_FIELD = re.compile(rb'("secret"\s*:\s*)"(?:[^"\\]|\\.)*"?')
_SECRET_HEADERS = frozenset({"x-emulator-admin-token", "cookie", "set-cookie"})


def _hide_key(match: re.Match[bytes]) -> bytes:
    key = match.group(0)
    return b"sgk_\xe2\x80\xa6" + key[-4:] if len(key) > 12 else b"sgk_\xe2\x80\xa6"


def redact(data: bytes) -> bytes:
    """Every `sgk_` key shown as `sgk_…` and its last four characters, and the value of every
    JSON `"secret"` field (a webhook's signing secret) replaced by `[redacted]`."""
    if b"sgk_" in data:
        data = _KEY.sub(_hide_key, data)
    if b'"secret"' in data:
        data = _SECRET_FIELD.sub(rb'\1"' + REDACTED.encode() + b'"', data)
    return data


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key == "authorization":
            scheme, _, credential = value.partition(b" ")
            shown = redact(credential) if credential.startswith(b"sgk_") else REDACTED.encode()
            text = (scheme + b" " + shown if credential else shown).decode("utf-8", "replace")
        elif key in _SECRET_HEADERS:
            text = REDACTED
        else:
            text = redact(value).decode("utf-8", "replace")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _body(chunks: list[bytes], size: int) -> dict[str, Any]:
    kept = b"".join(chunks)
    return {
        "body": redact(kept).decode("utf-8", "replace"),
        "size": size,
        "truncated": size > len(kept),
    }


class Exchange:
    """The headers and bodies of one request and its answer, as captured on the live path."""

    __slots__ = ("request_headers", "request_chunks", "request_size", "response_headers",
                 "response_chunks", "response_size", "_view")  # fmt: skip

    def __init__(self, request_headers: list[tuple[bytes, bytes]]) -> None:
        self.request_headers = request_headers
        self.request_chunks: list[bytes] = []
        self.request_size = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_chunks: list[bytes] = []
        self.response_size = 0
        self._view: dict[str, Any] | None = None

    def request_body(self, body: bytes) -> None:
        """A chunk of the request body: kept up to the cap, counted beyond it."""
        room = BODY_CAP - self.request_size
        if room > 0 and body:
            self.request_chunks.append(body if len(body) <= room else body[:room])
        self.request_size += len(body)

    def response_body(self, body: bytes) -> None:
        room = BODY_CAP - self.response_size
        if room > 0 and body:
            self.response_chunks.append(body if len(body) <= room else body[:room])
        self.response_size += len(body)

    @classmethod
    def saved(cls, view: dict[str, Any]) -> Exchange:
        """An exchange as the store kept it (already redacted)."""
        exchange = cls([])
        exchange._view = view
        return exchange

    def view(self) -> dict[str, Any]:
        """`{"request": {...}, "response": {...}}`, each with `headers`, `body`, `size` (the whole
        body's bytes) and `truncated`; secrets redacted. Built once; the raw capture is dropped."""
        if self._view is None:
            self._view = {
                "request": {
                    "headers": _headers(self.request_headers),
                    **_body(self.request_chunks, self.request_size),
                },
                "response": {
                    "headers": _headers(self.response_headers),
                    **_body(self.response_chunks, self.response_size),
                },
            }
            self.request_headers, self.response_headers = [], []
            self.request_chunks, self.response_chunks = [], []
        return self._view


def status_filter(value: str) -> Callable[[int], bool]:
    """`404` (exact) or `4xx` (a class); a ValueError otherwise."""
    text = value.strip().lower()
    if len(text) == 3 and text.endswith("xx") and text[0] in "12345":
        first = int(text[0])
        return lambda s: s // 100 == first
    code = int(text)
    if not 100 <= code <= 599:
        raise ValueError(value)
    return lambda s: s == code


def path_filter(pattern: str) -> Callable[[str], bool]:
    """A glob (`fnmatch`: `*`, `?`, `[...]`) if the pattern has one, else a prefix."""
    if any(c in pattern for c in "*?["):
        return lambda p: fnmatch.fnmatchcase(p, pattern)
    return lambda p: p.startswith(pattern)


class Journal:
    def __init__(self, now: Callable[[], float], capacity: int = 10_000) -> None:
        self._now = now
        self.capacity = capacity
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        # entries not yet in the store: written in batches (`emulator.durable`), never one
        # database write per request; bounded like the journal itself
        self._unsaved: deque[tuple[Any, ...]] = deque(maxlen=capacity)

    def record(
        self,
        scope: Scope,
        status: int,
        tenant_id: str | None,
        request_id: str,
        exchange: Exchange | None = None,
    ) -> None:
        exchange = exchange or Exchange(list(scope["headers"]))
        entry = (self._now(), scope["method"], scope["path"], scope.get("query_string", b""),
                 status, tenant_id, request_id, exchange)  # fmt: skip
        self._entries.append(entry)
        self._unsaved.append(entry)

    def take_unsaved(self) -> list[tuple[Any, ...]]:
        """The entries recorded since the last call, for the store: the first seven fields and
        the redacted exchange (`Exchange.view`)."""
        out = [(*e[:7], e[7].view()) for e in self._unsaved]
        self._unsaved.clear()
        return out

    def restore(self, entries: list[tuple[Any, ...]]) -> None:
        """Entries a previous run saved (their exchange a view, or None), oldest first, before
        any new ones."""
        saved = [(*e[:7], Exchange.saved(e[7] or {})) for e in entries]
        self._entries = deque([*saved, *self._entries], maxlen=self.capacity)

    def entries(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | str | None = None,
        tenant_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching entries, oldest first; `path` is a glob if it has one, else a prefix;
        `status` a code or a class (`"4xx"`); `since` and `until` are inclusive."""
        path_ok = path_filter(path) if path else None
        status_ok = status_filter(str(status)) if status is not None else None
        method = method.upper() if method else None
        picked = []
        for entry in self._entries:
            t, m, p, _q, s, ten = entry[:6]
            if (
                (method and m != method)
                or (path_ok and not path_ok(p))
                or (status_ok and not status_ok(s))
                or (tenant_id and ten != tenant_id)
                or (since is not None and t < since)
                or (until is not None and t > until)
            ):
                continue
            picked.append(entry)
        if limit:
            picked = picked[-limit:]
        return [self._dict(e) for e in picked]

    @staticmethod
    def _dict(entry: tuple[Any, ...]) -> dict[str, Any]:
        t, m, p, q, s, ten, rid, exchange = entry
        query = redact(q).decode("utf-8", "replace")
        return {**dict(zip(_FIELDS, (iso(t), m, p, query, s, ten, rid), strict=True)),
                **exchange.view()}  # fmt: skip

    def raw(self) -> list[tuple[Any, ...]]:
        """(time, method, path, query, status, tenant, request id) tuples, for the verdict."""
        return [e[:7] for e in self._entries]

    def clear(self, tenant_id: str | None = None) -> None:
        for entries in (self._entries, self._unsaved):
            if tenant_id is None:
                entries.clear()
                continue
            kept = [e for e in entries if e[5] != tenant_id]
            entries.clear()
            entries.extend(kept)
