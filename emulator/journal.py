"""The request journal: what each request was and how it was answered, kept in memory.

Recording is a tuple append on the hot path; the dicts are built only when someone reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from emulator.clock import iso

_FIELDS = ("time", "method", "path", "query", "status", "tenant_id", "request_id")


class Journal:
    def __init__(self, now: Callable[[], float], capacity: int = 10_000) -> None:
        self._now = now
        self.capacity = capacity
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        # entries not yet in the store: written in batches (`emulator.durable`), never one
        # database write per request; bounded like the journal itself
        self._unsaved: deque[tuple[Any, ...]] = deque(maxlen=capacity)

    def record(self, scope: Scope, status: int, tenant_id: str | None, request_id: str) -> None:
        entry = (self._now(), scope["method"], scope["path"], scope.get("query_string", b""),
                 status, tenant_id, request_id)  # fmt: skip
        self._entries.append(entry)
        self._unsaved.append(entry)

    def take_unsaved(self) -> list[tuple[Any, ...]]:
        """The entries recorded since the last call, for the store."""
        out = list(self._unsaved)
        self._unsaved.clear()
        return out

    def restore(self, entries: list[tuple[Any, ...]]) -> None:
        """Entries a previous run saved, oldest first, before any new ones."""
        self._entries = deque([*entries, *self._entries], maxlen=self.capacity)

    def entries(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        tenant_id: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching entries, oldest first; `path` matches as a prefix."""
        out = []
        for t, m, p, q, s, ten, rid in self._entries:
            if (
                (method and m != method.upper())
                or (path and not p.startswith(path))
                or (status is not None and s != status)
                or (tenant_id and ten != tenant_id)
                or (since is not None and t < since)
            ):
                continue
            out.append(
                dict(zip(_FIELDS, (iso(t), m, p, q.decode("latin-1"), s, ten, rid), strict=True))
            )
        return out[-limit:] if limit else out

    def raw(self) -> list[tuple[Any, ...]]:
        """(time, method, path, query, status, tenant, request id) tuples, for the verdict."""
        return list(self._entries)

    def clear(self, tenant_id: str | None = None) -> None:
        for entries in (self._entries, self._unsaved):
            if tenant_id is None:
                entries.clear()
                continue
            kept = [e for e in entries if e[5] != tenant_id]
            entries.clear()
            entries.extend(kept)
