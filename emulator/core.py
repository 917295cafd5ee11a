"""The emulator core: wires settings, clock, store, engine and the batch worker together.

The HTTP app (`emulator.app`) holds one core; the pytest fixture builds one directly and starts
it itself, since httpx's ASGI transport runs no lifespan.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import httpx

from emulator import __version__
from emulator.batches import Batches
from emulator.catalogue import load_catalogue
from emulator.clock import Clock
from emulator.engine import Engine
from emulator.files import Files
from emulator.ids import Ids
from emulator.journal import Journal
from emulator.plan import HAPPY_PATH, Plan
from emulator.records import BatchRecord
from emulator.settings import Settings
from emulator.signing import Signer
from emulator.sources import SourceConfig
from emulator.store import Store
from emulator.tenancy import load_tenancy
from emulator.worker import Worker

log = logging.getLogger("emulator")

IMAGE_URL_TTL = 3600  # image links expire after 1 hour, as ScaiGrid's media proxy URLs do


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
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=30.0, follow_redirects=True)
        self.source_config = SourceConfig(
            scaidrive_root=settings.scaidrive_root, s3_endpoint_url=settings.s3_endpoint_url
        )
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
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- live inference ------------------------------------------------------------------------

    def infer(self, route: str, body: Any) -> dict[str, Any]:
        """Answer one inference request with the engine batches use too."""
        return self.engine.infer(route, body, created=int(self.clock.now()))

    def infer_stream(self, body: Any) -> list[dict[str, Any]]:
        return self.engine.chat_stream(body, created=int(self.clock.now()))

    def image_url(self, digest: str) -> str:
        path = f"/v1/inference/images/{digest}.png"
        expires = int(self.clock.now()) + IMAGE_URL_TTL
        return f"{self.settings.base_url}{path}?{self.signer.query(path, expires)}"

    def plan_for(self, batch: BatchRecord) -> Plan:
        """The processing plan a batch follows."""
        return HAPPY_PATH

    async def settle(self) -> None:
        """Process everything due on the emulator clock now (tests and clock moves use this)."""
        await self.worker.run_due()

    def health(self) -> dict[str, Any]:
        return {"status": "healthy" if self.started else "starting", "version": self.version}
