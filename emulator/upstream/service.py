"""The upstream as the emulator uses it: map the model, answer from a recording or the upstream,
record what the upstream said, translate it.

Built from the settings (`from_settings`): none of `--upstream` and `--replay` means no upstream
at all, and every answer is the engine's. With `--replay`, a request with no recording follows
`--replay-miss`: `error` (a `REPLAY_MISS` error), `fake` (the engine answers it) or `upstream`
(ask the upstream; with `--record` too, what it says is recorded).
"""

from __future__ import annotations

from typing import Any

from emulator.errors import ConfigError, EmulatorError, ReplayMiss
from emulator.metrics import Metrics
from emulator.settings import Settings
from emulator.upstream.answers import translate
from emulator.upstream.client import PATHS, Reply, UpstreamClient
from emulator.upstream.models import ModelMap
from emulator.upstream.tape import Tape, normalise

#: the routes an upstream answers (images stay the engine's: their links are the emulator's)
RELAYED = frozenset(PATHS)


class Upstream:
    def __init__(
        self,
        client: UpstreamClient | None,
        models: ModelMap,
        *,
        record: Tape | None = None,
        replay: Tape | None = None,
        miss: str = "error",
        metrics: Metrics | None = None,
    ) -> None:
        self.client, self.models = client, models
        self.record, self.replay, self.miss = record, replay, miss
        self.metrics = metrics or Metrics()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> Upstream | None:
        s, metrics = settings, metrics or Metrics()
        if s.upstream is None:
            if s.record is not None:
                raise ConfigError("--record needs --upstream: it records the upstream's answers")
            if s.replay is not None and s.replay_miss == "upstream":
                raise ConfigError("--replay-miss upstream needs --upstream")
            if s.replay is None:
                return None
        client = None
        if s.upstream is not None:
            client = UpstreamClient(
                s.upstream, s.upstream_key, s.upstream_concurrency, s.upstream_timeout, metrics
            )
        return cls(
            client,
            ModelMap(s.upstream_model_map or ()),
            # the record folder first: made now, a replay of the same folder finds it at once
            record=None if s.record is None else Tape(s.record, create=True),
            replay=None if s.replay is None else Tape(s.replay, create=False),
            miss=s.replay_miss,
            metrics=metrics,
        )

    @property
    def concurrency(self) -> int | None:
        """How many upstream calls may be in flight at once; None if it is never called (a
        replay that answers a miss itself): recordings are read at once."""
        return None if self.client is None else self.client.concurrency

    async def answer(
        self, route: str, body: dict[str, Any], *, response_id: str | None, created: int
    ) -> dict[str, Any] | None:
        """The answer to a checked request, in the emulator's shape (without usage if the
        upstream gave none), or None when a replay miss is to be answered by the engine."""
        sent = {**body, "model": self.models(body["model"])}
        sent.pop("stream", None)
        sent.pop("stream_options", None)
        request = normalise(route, sent)
        model = body["model"]
        if self.replay is not None:
            recorded = self._replayed(route, request)
            if recorded is not None:
                return translate(
                    route, recorded, model=model, response_id=response_id, created=created
                )
            if self.miss == "fake":
                return None
        return await self._called(route, sent, request, model, response_id, created)

    def _replayed(self, route: str, request: dict[str, Any]) -> Reply | None:
        """The recording of `request`, or None if it has none and the miss is not an error."""
        assert self.replay is not None
        try:
            recorded = self.replay.get(request)
        except ReplayMiss:  # a recording that cannot be read
            self.metrics.replays["miss"] += 1
            raise
        self.metrics.replays["miss" if recorded is None else "hit"] += 1
        if recorded is None and self.miss == "error":
            raise ReplayMiss(f"No recording of this {route} request in {self.replay.folder}.")
        return recorded

    async def _called(
        self,
        route: str,
        sent: dict[str, Any],
        request: dict[str, Any],
        model: str,
        response_id: str | None,
        created: int,
    ) -> dict[str, Any]:
        """Ask the upstream, record what it says, translate it: where a call's outcome is
        decided, so where it is counted (a recording replayed is not a call)."""
        assert self.client is not None  # from_settings: no upstream, no asking it
        try:
            reply = await self.client.post(route, sent)
            if self.record is not None:
                self.record.put(request, reply)
                self.metrics.recordings += 1
            answer = translate(route, reply, model=model, response_id=response_id, created=created)
        except EmulatorError as exc:
            self.metrics.upstream_call(route, exc)
            raise
        self.metrics.upstream_call(route, None)
        return answer

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
