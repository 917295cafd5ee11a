"""Live inference: one request answered now, with the engine batches use too.

The answer is a pure function of (seed, body) but for `created`, so a repeated chat or generate
body (its exact bytes) is answered from memory, unless the tenant's scenario injects faults or
canned text into live calls: those count calls, so every call must reach them. A body is
remembered the second time it is seen: a client whose every body differs (the usual case) would
otherwise pay for filling and evicting the memory on every call and never be answered from it.

Every answer has its own id all the same: a live call is its tenant's n-th (counted from the
server's start or the tenant's reset), and its id is named after that (`Engine.response_id`), so
two calls with one body get one content and two ids, reproducibly under a seed. An answer with
tool calls is never remembered: their ids are the response's too.

With an upstream (`emulator.upstream`), `answer` and `stream_answer` send chat, generate and
embed requests there once the scenario has had its say; nothing is remembered, the upstream's
content being its own to vary.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Any

from emulator.clock import Clock
from emulator.endpoints import CHAT, ENDPOINTS
from emulator.inference.engine import Engine
from emulator.inference.relay import relayed
from emulator.metrics import Metrics
from emulator.records import RequestRecord
from emulator.scenario.model import Scenario
from emulator.scenario.registry import Scenarios
from emulator.upstream.service import RELAYED, Upstream

#: answers remembered, by exact request bytes; the oldest is dropped first
MEMO_SIZE = 4096
#: bodies seen once, kept (by hash) to spot the second time; cleared whole when full
SEEN_SIZE = 4 * MEMO_SIZE


class Live:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        scenarios: Scenarios,
        metrics: Metrics | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        self.engine, self.clock, self.scenarios = engine, clock, scenarios
        self.upstream = upstream
        self.metrics = metrics or Metrics()
        self._calls: defaultdict[str | None, int] = defaultdict(int)  # scenario-counted calls
        self._answered: defaultdict[str | None, int] = defaultdict(int)  # live answers per tenant
        self._answers: OrderedDict[tuple[str, bytes], dict[str, Any]] = OrderedDict()
        # the hashes of keys asked once, not yet remembered: an int each, never the body (a
        # collision would only remember a body at its first sighting, with the same answer)
        self._seen: set[int] = set()

    def infer(
        self,
        route: str,
        body: Any,
        tenant_id: str | None = None,
        base_url: str | None = None,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        """Answer one request. `base_url` is where the caller reached us, so image links point
        there; `raw` is the body's exact bytes, the key of the memo (None: do not remember)."""
        now = int(self.clock.now())
        scenario = self.scenarios.for_tenant(tenant_id)
        identity = self._identity(tenant_id)
        if scenario.faults or scenario.canned:
            canned = self._effects(scenario, route, body, tenant_id)
            return self.engine.infer(
                route, body, created=now, canned=canned, base_url=base_url, identity=identity
            )
        if raw is None or not ENDPOINTS[route].memo:
            return self.engine.infer(route, body, created=now, base_url=base_url, identity=identity)
        key = (route, raw)
        hit = self._answers.get(key)
        if hit is not None:
            return {**hit, "id": self.engine.response_id(route, identity), "created": now}
        answer = self.engine.infer(route, body, created=now, identity=identity)
        seen = hash(key)  # the bytes' hash is cached on them: the lookup above computed it
        if seen not in self._seen:
            if len(self._seen) >= SEEN_SIZE:
                self._seen.clear()  # forgetting a first sighting costs one more engine call
            self._seen.add(seen)
            return answer
        self._seen.discard(seen)
        if _calls_tools(answer):
            return answer
        if len(self._answers) >= MEMO_SIZE:
            self._answers.popitem(last=False)
        self._answers[key] = answer
        return answer

    async def answer(
        self,
        route: str,
        body: Any,
        tenant_id: str | None = None,
        base_url: str | None = None,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        """`infer`, or the upstream's answer when there is one for `route`."""
        if self.upstream is None or route not in RELAYED:
            return self.infer(route, body, tenant_id, base_url, raw)
        now = int(self.clock.now())
        identity = self._identity(tenant_id)  # counted first, as `infer` does
        canned = self._effects(self.scenarios.for_tenant(tenant_id), route, body, tenant_id)
        if canned is None:
            answer = await relayed(
                self.engine, self.upstream, route, body, created=now, identity=identity
            )
            if answer is not None:
                return answer
        return self.engine.infer(route, body, created=now, canned=canned, identity=identity)

    async def stream_answer(self, body: Any, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """`stream`, or the upstream's whole answer cut into chunks when there is an upstream."""
        if self.upstream is None:
            return self.stream(body, tenant_id)
        return self.engine.chunks_of(await self.answer(CHAT, body, tenant_id), body)

    def stream(self, body: Any, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The SSE chunks of a streamed chat answer."""
        scenario = self.scenarios.for_tenant(tenant_id)
        canned = self._effects(scenario, CHAT, body, tenant_id)
        identity = self._identity(tenant_id)
        return self.engine.chat_stream(
            body, created=int(self.clock.now()), canned=canned, identity=identity
        )

    def _identity(self, tenant_id: str | None) -> str:
        """What names this call's answer: the tenant's n-th live answer."""
        self._answered[tenant_id] += 1
        return f"live:{tenant_id}:{self._answered[tenant_id]}"

    def _effects(
        self, scenario: Scenario, route: str, body: Any, tenant_id: str | None
    ) -> str | None:
        """Raise the fault the tenant's scenario injects into this live call, if any; return its
        canned text, if any. A live call is its tenant's n-th call, with no custom_id or line."""
        if not (scenario.faults or scenario.canned):
            return None
        self._calls[tenant_id] += 1
        n = self._calls[tenant_id]
        request = RequestRecord(n - 1, 0, "", route, body)
        plan = self.scenarios.plan(scenario, f"live:{tenant_id}:{n}")
        fault = plan.fault(request)
        if fault is not None:
            self.metrics.faults[("request", fault.code)] += 1
            raise fault
        return plan.canned(request)

    def reseed(self, seed: int) -> None:
        """The engine answers for another seed: what was remembered no longer holds."""
        self.engine.reseed(seed)
        self._answers.clear()
        self._seen.clear()

    def reset(self, tenant_id: str | None = None) -> None:
        """Forget the live-call counts of one tenant, or of everyone."""
        if tenant_id is None:
            self._calls.clear()
            self._answered.clear()
        else:
            self._calls.pop(tenant_id, None)
            self._answered.pop(tenant_id, None)


def _calls_tools(answer: dict[str, Any]) -> bool:
    return any("tool_calls" in c.get("message", ()) for c in answer.get("choices", ()))
