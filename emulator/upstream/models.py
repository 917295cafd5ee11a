"""Which model name the upstream is sent for each emulator model (`--upstream-model-map`)."""

from __future__ import annotations

from collections.abc import Iterable


class ModelMap:
    """`ours -> theirs`; `*` names the upstream model of every model not named. A model with no
    entry and no `*` is sent under its own name (a second emulator knows the same catalogue)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._names = dict(pairs)
        self._rest = self._names.pop("*", None)

    def __call__(self, slug: str) -> str:
        return self._names.get(slug) or self._rest or slug
