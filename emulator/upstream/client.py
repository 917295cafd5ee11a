"""The HTTP calls to the upstream: one shared `httpx.AsyncClient`, at most `concurrency` calls in
flight, each bounded by `timeout`. A call that gets an HTTP answer returns it as a `Reply`
(whatever its status: what an error status means is `answers`' business, and a recording keeps
it); a call that gets none raises the error that request's record carries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from emulator.endpoints import IMAGES, OPENAI_PATHS
from emulator.errors import BackendError, BackendTimeout
from emulator.metrics import Metrics

if TYPE_CHECKING:
    import httpx

#: the upstream path of each relayed route: OpenAI's, under the base URL (which holds the `/v1`);
#: image generation is not relayed, its links being the emulator's own
PATHS = {route: path.removeprefix("/v1") for path, route in OPENAI_PATHS.items() if route != IMAGES}
_JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer of the upstream: its status, its JSON body (None if it was not JSON) and
    its `Retry-After` in seconds, if it gave one."""

    status: int
    body: Any
    retry_after: int | None = None


class UpstreamClient:
    def __init__(
        self,
        base_url: str,
        key: str | None,
        concurrency: int,
        timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.base_url, self.timeout, self.concurrency = base_url.rstrip("/"), timeout, concurrency
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # the semaphore, not the pool, queues calls: time spent waiting for a turn is not the
        # upstream being slow, so it does not count against the timeout
        self._turns = asyncio.Semaphore(concurrency)
        import httpx  # here: ~25 ms of every start, and only a server with an upstream needs it

        self._http: httpx.AsyncClient = httpx.AsyncClient(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency),
        )

    async def post(self, route: str, body: dict[str, Any]) -> Reply:
        import httpx

        url = self.base_url + PATHS[route]
        async with self._turns:
            self.metrics.upstream_in_flight += 1  # holding a turn: sent, or about to be
            try:
                # the whole call, not each read: an upstream that trickles bytes is slow too
                async with asyncio.timeout(self.timeout):
                    resp = await self._http.post(
                        url, content=orjson.dumps(body), headers=_JSON_BODY
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise BackendTimeout(
                    f"The upstream did not answer within {self.timeout:g} s."
                ) from exc
            except httpx.HTTPError as exc:  # refused, reset, dropped half-way
                raise BackendError(
                    f"The upstream connection failed ({type(exc).__name__})."
                ) from exc
            finally:
                self.metrics.upstream_in_flight -= 1
        try:
            parsed = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            parsed = None
        return Reply(resp.status_code, parsed, _retry_after(resp.headers.get("retry-after")))

    async def aclose(self) -> None:
        await self._http.aclose()


def _retry_after(value: str | None) -> int | None:
    """Whole seconds of a `Retry-After` given in seconds (an HTTP date is ignored)."""
    try:
        return max(0, round(float(value))) if value is not None else None
    except (ValueError, OverflowError):  # not a number, or nan / inf
        return None
