"""The emulator core: wires settings, clock, store, engine and the batch worker together.

The HTTP app (`emulator.api.app`) holds one core; the pytest fixture builds one directly and starts
it itself, since httpx's ASGI transport runs no lifespan.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpx

from emulator import __version__
from emulator.api.gate import GateState
from emulator.batch.files import Files
from emulator.batch.service import Batches
from emulator.batch.sources import SourceConfig
from emulator.batch.worker import Worker
from emulator.clock import Clock
from emulator.ids import Ids
from emulator.inference.catalogue import load_catalogue
from emulator.inference.engine import Engine
from emulator.journal import Journal
from emulator.records import BatchRecord, RequestRecord
from emulator.scenario.model import Scenario
from emulator.scenario.plan import HAPPY_PATH, Plan
from emulator.scenario.registry import Scenarios
from emulator.settings import Settings
from emulator.signing import Signer
from emulator.store import Store
from emulator.tenancy import load_tenancy

log = logging.getLogger("emulator")

IMAGE_URL_TTL = 3600  # image links expire after 1 hour, as ScaiGrid's media proxy URLs do
#: live answers remembered by exact request bytes (chat and generate carry no expiring links)
_MEMO_ROUTES = frozenset({"/v1/inference/chat", "/v1/inference/generate"})
_MEMO_SIZE = 4096
#: the base URL of the live request being answered, for the image links the engine mints
_request_base: ContextVar[str | None] = ContextVar("request_base", default=None)


class Emulator:
    """Everything one emulated service is made of. Built from settings, once."""

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.version = __version__
        self.clock = Clock(settings.clock, settings.clock_scale, settings.clock_start)
        self.catalogue = load_catalogue(settings.models)
        self.tenancy = load_tenancy(settings.tenants)
        self.ids = Ids(settings.seed)
        self.journal = Journal(self.clock.now)
        self.signer = Signer(hashlib.sha256(f"scaigrid-emulator:{settings.seed}".encode()).digest())
        self.engine = Engine(settings.seed, self.catalogue, image_url=self.image_url)
        self.store = Store(settings.db)
        self._http = http
        self._own_http = http is None
        self.source_config = SourceConfig(
            scaidrive_root=settings.scaidrive_root, s3_endpoint_url=settings.s3_endpoint_url
        )
        self.scenarios = Scenarios(settings.scenario)
        self.gate = GateState()
        self._live_calls: defaultdict[str | None, int] = defaultdict(int)
        self._answers: OrderedDict[tuple[str, bytes], dict[str, Any]] = OrderedDict()
        self.files = Files(self)
        self.batches = Batches(self)
        self.worker = Worker(self)
        self.started = False

    async def start(self) -> None:
        await self.store.open()
        await self.files.start()
        await self.batches.start()
        await self.worker.start()  # resumes every pending or processing batch
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.worker.stop()
        await self.store.close()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http(self) -> httpx.AsyncClient:
        """The client for http(s) batch input, made on first use: building one loads the CA
        bundle (~0.2 s), which most runs never need."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0, follow_redirects=True)
        return self._http

    # --- live inference ------------------------------------------------------------------------

    def infer(
        self,
        route: str,
        body: Any,
        tenant_id: str | None = None,
        base_url: str | None = None,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        """Answer one inference request with the engine batches use too. `base_url` is where the
        caller reached us, so image links point there (batches use the settings' URL).

        The answer is a pure function of (seed, body) but for `created`, so a repeated chat or
        generate body (`raw`, its exact bytes) is answered from memory unless the tenant's
        scenario injects faults or canned text, which count calls.
        """
        now = int(self.clock.now())
        scenario = self.scenarios.for_tenant(tenant_id)
        if scenario.faults or scenario.canned:
            canned = self._scenario_effects(scenario, route, body, tenant_id)
            with self.links_at(base_url):
                return self.engine.infer(route, body, created=now, canned=canned)
        if raw is None or route not in _MEMO_ROUTES:
            with self.links_at(base_url):
                return self.engine.infer(route, body, created=now)
        key = (route, raw)
        hit = self._answers.get(key)
        if hit is not None:
            return {**hit, "created": now}
        answer = self.engine.infer(route, body, created=now)  # chat/generate carry no links
        if len(self._answers) >= _MEMO_SIZE:
            self._answers.popitem(last=False)  # the oldest
        self._answers[key] = answer
        return answer

    def infer_stream(self, body: Any, tenant_id: str | None = None) -> list[dict[str, Any]]:
        scenario = self.scenarios.for_tenant(tenant_id)
        canned = self._scenario_effects(scenario, "/v1/inference/chat", body, tenant_id)
        return self.engine.chat_stream(body, created=int(self.clock.now()), canned=canned)

    def _scenario_effects(
        self, scenario: Scenario, route: str, body: Any, tenant_id: str | None
    ) -> str | None:
        """Raise the fault the tenant's scenario injects into this live call, if any; return its
        canned text, if any. A live call is its tenant's n-th call, with no custom_id or line."""
        if not (scenario.faults or scenario.canned):
            return None
        self._live_calls[tenant_id] += 1
        n = self._live_calls[tenant_id]
        request = RequestRecord(n - 1, 0, "", route, body)
        plan = scenario.plan(self.settings.seed, f"live:{tenant_id}:{n}")
        fault = plan.fault(request)
        if fault is not None:
            raise fault
        return plan.canned(request)

    @contextlib.contextmanager
    def links_at(self, base_url: str | None) -> Iterator[None]:
        """Image links minted inside point at `base_url` (where the client reached us)."""
        token = _request_base.set(base_url)
        try:
            yield
        finally:
            _request_base.reset(token)

    def image_url(self, digest: str) -> str:
        path = f"/v1/inference/images/{digest}.png"
        expires = int(self.clock.now()) + IMAGE_URL_TTL
        base = (_request_base.get() or self.settings.base_url).rstrip("/")
        return f"{base}{path}?{self.signer.query(path, expires)}"

    def plan_for(self, batch: BatchRecord) -> Plan:
        """The processing plan a batch follows: its scenario, as captured when it was submitted."""
        text = batch.extra.get("scenario")
        if text is None:
            return HAPPY_PATH
        return self.scenarios.from_yaml(text).plan(self.settings.seed, batch.id)

    async def settle(self) -> None:
        """Process everything due on the emulator clock now (tests and clock moves use this)."""
        await self.worker.run_due()

    # --- control ---------------------------------------------------------------------------------

    async def reset(self, tenant_id: str | None = None) -> None:
        """Forget everything, or one tenant's batches, files, scenario and journal."""
        async with self.worker.lock:
            await self.store.reset(tenant_id)
            self.worker.forget()
        self.journal.clear(tenant_id)
        self.scenarios.reset(tenant_id)
        if tenant_id is not None:
            self.gate.forget(tenant_id)
            self._live_calls.pop(tenant_id, None)
            return
        self.gate.reset()
        self._live_calls.clear()
        self.files.reset_sequence()
        self.batches.reset_sequence()
        self.ids.reset()

    def reseed(self, seed: int) -> None:
        """Change the seed behind ids, fake inference and every random choice."""
        self.settings = self.settings.replace(seed=seed)
        self.ids = Ids(seed)
        self.signer = Signer(hashlib.sha256(f"scaigrid-emulator:{seed}".encode()).digest())
        self.engine = Engine(seed, self.catalogue, image_url=self.image_url)
        self._answers.clear()

    def health(self) -> dict[str, Any]:
        return {"status": "healthy" if self.started else "starting", "version": self.version}
