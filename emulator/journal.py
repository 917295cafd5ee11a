"""The request journal: what each request was and how it was answered.

Recording stays off the live path's bill: an entry is a tuple append, and its `Exchange` holds
references to what the request already carried (the scope's header list, the ASGI messages' body
bytes, the response's header list), copying only response bodies (below). Nothing is decoded,
redacted or built into a dict until someone reads the entry; secrets are redacted then, on every
read, so the clear form is never shown (nor stored: only the summary fields below are saved
across a restart).

Exchanges are held under a byte budget: once the exchanges held pass it, the oldest lose their
headers and bodies first and keep their summary (time, method, path, query, status, tenant,
request id). Each body is kept up to `BODY_CAP` bytes; the rest is counted, not kept. An exchange
is charged what holding it really costs (`weight`): its bytes objects with their own overhead,
its tuple and its places in the journal's index, so the budget bounds the memory the exchanges
take (`tests/test_journal_memory.py` measures it with tracemalloc). The summaries are bounded by
their number (`capacity`), not by the budget: they outlive the exchanges.

Response bodies are the one thing copied: a body orjson made (every JSON answer) sits in a buffer
orjson over-allocates and never trims (with orjson 3.13: 4 KiB for a 20-byte answer, 32 KiB for a
3 KB one), which `len` and `sys.getsizeof` do not show. The copy is exactly the body's size, and
the answer's own buffer is freed once the answer has been sent. Request bodies and headers come
from the server exact-size, and are held as they came.
"""

from __future__ import annotations

import fnmatch
import itertools
import operator
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from starlette.types import Scope

from emulator.clock import iso

_FIELDS = ("time", "method", "path", "query", "status", "tenant_id", "request_id")
#: an entry's summary as saved: its fields without the seq its exchange is filed under
_SUMMARY = operator.itemgetter(*range(len(_FIELDS)))
_TENANT = operator.itemgetter(_FIELDS.index("tenant_id"))
#: how many tenants with saved entries the journal tracks by name (beyond: `saved_any` is True)
SAVED_TENANTS = 100_000

#: how much of each body an exchange keeps
BODY_CAP = 64 * 1024
#: the default byte budget of the exchanges held (the `journal_bytes` setting)
DEFAULT_BUDGET = 32 * 1024 * 1024
#: what each bytes object an exchange holds costs beyond its length: the object's header (33
#: bytes), the allocator's rounding to 16 (8 on average) and its slot in the exchange's tuple (8)
OBJECT_COST = 49
#: what each exchange costs beyond its bytes objects: its tuple's header and five counts (80),
#: its two sizes and its weight as int objects (96), and its places in the index by seq and the
#: two eviction queues (about 48, with a dict's spare room). Measured with tracemalloc and kept
#: honest by `tests/test_journal_memory.py`.
EXCHANGE_COST = 224

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


def redact_path(path: str) -> str:
    """A path as shown and saved: a key in it (`/_emulator/tenants/sgk_.../scenario` names a
    tenant by its key) masked like any other."""
    return redact(path.encode()).decode() if "sgk_" in path else path


def redact_authorization(value: bytes) -> str:
    """An `Authorization` value as shown: an `sgk_` key masked, any other credential hidden."""
    scheme, _, credential = value.partition(b" ")
    shown = redact(credential) if credential.startswith(b"sgk_") else REDACTED.encode()
    return (scheme + b" " + shown if credential else shown).decode("utf-8", "replace")


def _pairs(flat: tuple[bytes, ...]) -> Iterator[tuple[bytes, bytes]]:
    return zip(flat[::2], flat[1::2], strict=True)


def _headers(flat: tuple[bytes, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in _pairs(flat):
        key = name.decode("latin-1").lower()
        if key == "authorization":
            text = redact_authorization(value)
        elif key in _SECRET_HEADERS:
            text = REDACTED
        else:
            text = redact(value).decode("utf-8", "replace")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _joined(chunks: tuple[bytes, ...]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


#: an exchange as the journal holds it, in one flat tuple: the number of request header pairs,
#: of request body chunks and of response header pairs, the two body sizes, then the request
#: headers (name, value, name, value, ...), the request chunks, the response headers and the
#: response chunks. One tuple of bytes and ints per request: the garbage collector untracks it,
#: and the fewer objects a request leaves behind, the rarer the collector's passes.
Held = tuple[Any, ...]
_flat = itertools.chain.from_iterable
_islice = itertools.islice


class Exchange:
    """The headers and bodies of one request and its answer, captured while it runs: the header
    lists and request body bytes the ASGI messages carried, referenced as they are, and exact-size
    copies of the response body's chunks (module doc). A body is kept up to `BODY_CAP` bytes and
    counted beyond: of the chunk that crosses the cap only its first part is kept, so a large
    upload or download never holds more than the cap."""

    __slots__ = ("request_headers", "request_chunks", "request_size", "response_headers",
                 "response_chunks", "response_size")  # fmt: skip

    def __init__(self, request_headers: list[tuple[bytes, bytes]]) -> None:
        self.request_headers = request_headers
        self.request_chunks: list[bytes] = []
        self.request_size = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_chunks: list[bytes] = []
        self.response_size = 0

    def request_body(self, body: bytes) -> None:
        size = self.request_size
        self.request_size = size + len(body)
        if size < BODY_CAP and body:
            self.request_chunks.append(
                body if self.request_size <= BODY_CAP else body[: BODY_CAP - size]
            )

    def response_body(self, body: bytes) -> None:
        size = self.response_size
        self.response_size = size + len(body)
        if size < BODY_CAP and body:  # an exact-size copy, not orjson's buffer (module doc)
            self.response_chunks.append(
                bytes(memoryview(body)) if self.response_size <= BODY_CAP
                else body[: BODY_CAP - size]
            )  # fmt: skip

    def freeze(self) -> Held:
        """The capture as the journal holds it (the same objects, in one flat tuple)."""
        sent, answered = self.request_headers, self.response_headers
        return (len(sent), len(self.request_chunks), len(answered), self.request_size,
                self.response_size, *_flat(sent), *self.request_chunks, *_flat(answered),
                *self.response_chunks)  # fmt: skip


class Kept:
    """Reading a held exchange; made only when someone reads the journal."""

    __slots__ = ("_held",)

    def __init__(self, held: Held) -> None:
        sent, chunks, answered, sent_size, answered_size = held[:5]
        at = 5 + 2 * sent
        request = held[5:at], held[at : at + chunks], sent_size
        at += chunks
        response = held[at : at + 2 * answered], held[at + 2 * answered :], answered_size
        self._held: tuple[Any, ...] = (*request, *response)

    def request_raw(self) -> bytes:
        """The request body as captured (up to the cap), unredacted: for the verdict's
        comparisons, never shown."""
        chunks = self._held[1]
        return _joined(chunks) if chunks else b""

    def response_json(self) -> Any:
        """The response body parsed, or None (not JSON, or truncated)."""
        chunks, size = self._held[4], self._held[5]
        if not chunks or size > BODY_CAP:
            return None
        try:
            return orjson.loads(_joined(chunks))
        except orjson.JSONDecodeError:
            return None

    def request_header(self, name: bytes) -> bytes | None:
        return _find(self._held[0], name)

    def response_header(self, name: bytes) -> bytes | None:
        return _find(self._held[3], name)

    def view(self) -> dict[str, Any]:
        """`{"request": {...}, "response": {...}}`, each with `headers`, `body` (text), `size`
        (the whole body's bytes) and `truncated`; every secret redacted."""
        h = self._held
        return {"request": _side(h[0], h[1], h[2]), "response": _side(h[3], h[4], h[5])}


_NOT_HELD: dict[str, Any] = {"request": None, "response": None}


def _find(headers: tuple[bytes, ...], name: bytes) -> bytes | None:
    for key, value in _pairs(headers):
        if key.lower() == name:
            return value
    return None


def _side(headers: tuple[bytes, ...], chunks: tuple[bytes, ...], size: int) -> dict[str, Any]:
    kept = _joined(chunks) if chunks else b""
    return {
        "headers": _headers(headers),
        "body": redact(kept).decode("utf-8", "replace"),
        "size": size,
        "truncated": size > len(kept),
    }


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


def weight(held: Held) -> int:
    """What holding an exchange costs in memory: its bytes objects, each its length and
    `OBJECT_COST`, and `EXCHANGE_COST` (one pass over ~25 lengths; no `sys.getsizeof` walk)."""
    objects = len(held) - 5
    return EXCHANGE_COST + objects * OBJECT_COST + sum(map(len, _islice(held, 5, None)))


class Journal:
    def __init__(
        self,
        now: Callable[[], float],
        capacity: int = 10_000,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        self._now = now
        self.capacity = capacity
        self.budget = budget
        # (time, method, path, query, status, tenant, request id, seq): the summary, and the
        # number its held exchange is filed under (None for a summary from a previous run)
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        # entries not yet in the store: written in batches (`emulator.durable`), never one
        # database write per request; bounded like the journal itself
        self._unsaved: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        # the exchanges held, by seq; the order they go in when the budget is spent, with what
        # each weighs; and the total
        self._held: dict[int, Held] = {}
        self._order: deque[int] = deque()  # seqs, oldest first
        self._weights: deque[int] = deque()  # what each weighs (ints: nothing for the collector)
        self._held_bytes = 0
        self._seq = 0
        # tenants with entries in the store; None once there are more than SAVED_TENANTS (a
        # client inventing a key per request): from then on any tenant may have some
        self._saved_tenants: set[str | None] | None = set()

    def record(
        self,
        scope: Scope,
        status: int,
        tenant_id: str | None,
        request_id: str,
        exchange: Exchange | None = None,
    ) -> None:
        self._seq = seq = self._seq + 1
        path, query = scope["path"], scope.get("query_string", b"")
        entry = (self._now(), scope["method"], path, query, status, tenant_id, request_id, seq)
        self._entries.append(entry)
        if "sgk_" in path or (query and redact(query) != query):  # saved as shown: no secret
            entry = (*entry[:2], redact_path(path), redact(query), *entry[4:])
        self._unsaved.append(entry)
        if exchange is not None:
            self._hold(seq, exchange)

    def _hold(self, seq: int, exchange: Exchange) -> None:
        held, order, weights = self._held, self._order, self._weights
        held[seq] = frozen = exchange.freeze()
        cost = weight(frozen)
        order.append(seq)
        weights.append(cost)
        total = self._held_bytes + cost
        while total > self.budget or len(order) > self.capacity:
            del held[order.popleft()]
            total -= weights.popleft()
        self._held_bytes = total

    def take_unsaved(self) -> list[tuple[Any, ...]]:
        """The summaries recorded since the last call, for the store (bodies are not saved),
        keys redacted (`record` did that, so a save does no per-entry work in Python)."""
        out = list(map(_SUMMARY, self._unsaved))
        self._unsaved.clear()
        self._saw_tenants(out)
        return out

    def _saw_tenants(self, entries: list[tuple[Any, ...]]) -> None:
        known = self._saved_tenants
        if known is not None:
            known.update(map(_TENANT, entries))
            if len(known) > SAVED_TENANTS:
                self._saved_tenants = None

    def saved_any(self, tenant_id: str) -> bool:
        """Whether entries of the tenant may be in the store (so a reset must forget them)."""
        return self._saved_tenants is None or tenant_id in self._saved_tenants

    def restore(self, entries: list[tuple[Any, ...]]) -> None:
        """Summaries a previous run saved, oldest first, before any new ones."""
        saved = [(*entry, None) for entry in entries]
        self._saw_tenants(entries)
        self._entries = deque([*saved, *self._entries], maxlen=self.capacity)

    def entries(self, *, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """The last `limit` matching entries, oldest first, as dicts with `request` and
        `response` (None when the exchange is no longer held); `filters` are `select`'s."""
        picked = self.select(**filters)
        if limit:
            picked = picked[-limit:]
        return [self._dict(e) for e in picked]

    def select(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | str | None = None,
        tenant_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Matching entries, oldest first, each (time, method, path, query, status, tenant,
        request id, `Kept` or None); `path` is a glob if it has one, else a prefix; `status` a
        code or a class (`"4xx"`); `since` and `until` are inclusive."""
        path_ok = path_filter(path) if path else None
        status_ok = status_filter(str(status)) if status is not None else None
        method = method.upper() if method else None
        held = self._held
        picked = []
        for entry in self._entries:
            t, m, p, _q, s, ten, _rid, seq = entry
            if (
                (method and m != method)
                or (path_ok and not path_ok(p))
                or (status_ok and not status_ok(s))
                or (tenant_id and ten != tenant_id)
                or (since is not None and t < since)
                or (until is not None and t > until)
            ):
                continue
            exchange = held.get(seq) if seq is not None else None
            picked.append((*entry[:7], Kept(exchange) if exchange is not None else None))
        return picked

    @staticmethod
    def _dict(entry: tuple[Any, ...]) -> dict[str, Any]:
        t, m, p, q, s, ten, rid, kept = entry
        query = redact(q).decode("utf-8", "replace")
        summary = dict(zip(_FIELDS, (iso(t), m, redact_path(p), query, s, ten, rid), strict=True))
        return {**summary, **(kept.view() if kept is not None else _NOT_HELD)}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def recorded(self) -> int:
        """How many requests were recorded since the start (a change mark, never lowered)."""
        return self._seq

    def oldest(self) -> float | None:
        """The time of the oldest entry kept, or None when the journal is empty."""
        return self._entries[0][0] if self._entries else None

    def clear(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._saved_tenants = set()
        elif self._saved_tenants is not None:
            self._saved_tenants.discard(tenant_id)
        for entries in (self._entries, self._unsaved):
            if tenant_id is None:
                entries.clear()
                continue
            kept = [e for e in entries if e[5] != tenant_id]
            entries.clear()
            entries.extend(kept)
        alive = {e[7] for e in self._entries}
        kept = [(seq, w) for seq, w in zip(self._order, self._weights, strict=True) if seq in alive]
        self._held = {seq: self._held[seq] for seq, _ in kept}
        self._order = deque(seq for seq, _ in kept)
        self._weights = deque(w for _, w in kept)
        self._held_bytes = sum(self._weights)
