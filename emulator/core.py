"""The emulator core: builds each service from settings and hands it exactly what it uses.

Nothing here does work of its own; what the control plane does to the whole (reset, reseed) is
`emulator.control`'s. The HTTP app (`emulator.api.app`) holds one core; the pytest fixture builds
one directly and starts it itself, since httpx's ASGI transport runs no lifespan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator import __version__
from emulator.batch.files import Files
from emulator.batch.oai import OaiView
from emulator.batch.service import Batches, Limits
from emulator.batch.sources import SourceConfig, Sources
from emulator.batch.worker import Worker
from emulator.clock import Clock
from emulator.durable import Durable
from emulator.ids import Ids
from emulator.inference.catalogue import load_catalogue
from emulator.inference.engine import Engine
from emulator.inference.images import ImageLinks
from emulator.inference.live import Live
from emulator.journal import Journal
from emulator.metrics import Metrics
from emulator.scenario.effects import ApiEffects
from emulator.scenario.registry import Scenarios
from emulator.settings import Settings
from emulator.signing import Signer
from emulator.store import Store
from emulator.tenancy import load_tenancy
from emulator.upstream.service import Upstream
from emulator.webhooks.events import Events
from emulator.webhooks.outbox import Outbox
from emulator.webhooks.sender import Sender
from emulator.webhooks.service import Webhooks
from emulator.webhooks.sink import Sinks

#: the emulator_state key of the global scenario set through the control plane
GLOBAL_SCENARIO = "scenario"

if TYPE_CHECKING:
    import httpx


class Emulator:
    """Everything one emulated service is made of. Built from settings, once."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        webhook_http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.version = __version__
        self.clock = Clock(settings.clock, settings.clock_scale, settings.clock_start)
        self.catalogue = load_catalogue(settings.models)
        self.tenancy = load_tenancy(settings.tenants)
        self.store = Store(settings.db)
        self.ids = Ids(settings.seed, self.store)
        self.signer = Signer(settings.seed, settings.signing_secret)
        self.journal = Journal(self.clock.now, budget=settings.journal_bytes)
        self.metrics = Metrics()
        self.durable = Durable(self.store, self.clock, self.journal)
        self.scenarios = Scenarios(settings.scenario, settings.seed)
        self.effects = ApiEffects()
        links = ImageLinks(self.signer, self.clock, settings.base_url)
        self.engine = Engine(settings.seed, self.catalogue, links)
        # a real model behind live calls and batch lines, or None: every answer is the engine's
        self.upstream = Upstream.from_settings(settings, self.metrics)
        self.live = Live(self.engine, self.clock, self.scenarios, self.metrics, self.upstream)
        config = SourceConfig(settings.scaidrive_root, settings.s3_endpoint_url)
        self.sources = Sources(config, http)
        self.files = Files(self.store, self.clock, self.ids, settings.max_input_bytes)
        self.outbox = Outbox()
        self.worker = Worker(
            self.store, self.clock, self.engine, self.scenarios,
            on_final=self.outbox.batch_final, metrics=self.metrics, upstream=self.upstream,
        )  # fmt: skip
        self.batches = Batches(
            self.store, self.clock, self.worker,
            files=self.files, ids=self.ids, scenarios=self.scenarios, signer=self.signer,
            limits=Limits.of(settings), sources=self.sources,
        )  # fmt: skip
        self.oai = OaiView(self.batches, self.ids)  # the OpenAI view of the same batches and files
        self.events = Events(
            self.store, self.clock, self.ids, self.batches, self.tenancy, settings.base_url
        )
        self.sender = Sender(
            self.store, self.clock, self.events, self.outbox, self.scenarios, webhook_http,
            metrics=self.metrics,
        )  # fmt: skip
        self.webhooks = Webhooks(self.store, self.clock, self.ids, self.sender)
        self.sinks = Sinks(self.clock)
        self.started = False

    async def start(self) -> None:
        await self.store.open()
        await self.durable.restore()  # the clock and journal where the last run stopped
        global_ = await self.store.get_state(GLOBAL_SCENARIO)
        self.scenarios.restore(
            None if global_ is None else (global_["name"], global_["source"], global_["text"]),
            await self.store.tenant_scenarios(),
        )
        await self.files.start()
        await self.batches.start()
        await self.events.start()
        await self.webhooks.start()
        await self.worker.start()  # resumes every pending or processing batch
        await self.sender.start()  # makes the events a crash kept from being made
        self.durable.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.worker.stop()
        await self.sender.stop()
        await self.durable.stop()
        await self.store.close()
        await self.sources.aclose()
        if self.upstream is not None:
            await self.upstream.aclose()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
