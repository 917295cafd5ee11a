"""Batches: submit, list, status, cancel and results. Processing itself is the worker's."""

from __future__ import annotations

import base64
import binascii
import itertools
import posixpath
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from emulator import wire
from emulator.batch.files import Content, Files
from emulator.batch.sources import SourceConfig, Sources, scheme_of
from emulator.batch.worker import Worker
from emulator.clock import Clock
from emulator.errors import BatchNotCancellable, BatchNotFound, QuotaExceeded, ValidationError
from emulator.ids import Ids
from emulator.records import BatchRecord, FileRecord
from emulator.scenario.model import Scenario
from emulator.scenario.registry import Scenarios
from emulator.schema import enum, obj, string
from emulator.settings import Settings
from emulator.signing import Signer
from emulator.status import BatchStatus, is_final
from emulator.store import Store
from emulator.windows import DEFAULT_WINDOW, WINDOWS

MAX_BASE64_BYTES = 10 * 1024 * 1024
RESULTS_URL_TTL = 3600


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {field}: {message}.", details=[{"field": field, "message": message}]
    )


#: the submit body `check_submission` accepts, as JSON Schema (other keys are ignored)
SUBMIT = obj(
    {},
    {
        "input_file_url": string(
            "scaigrid://file/{id}, http(s)://, s3://bucket/key or scaidrive://path"
        ),
        "input_file_base64": string(
            f"the JSONL input, base64; at most {MAX_BASE64_BYTES} bytes decoded",
            contentEncoding="base64",
        ),
        "endpoint_completion_window": enum(WINDOWS),
        "metadata": wire.METADATA,
    },
    extra=True,
)
SUBMIT["oneOf"] = [{"required": ["input_file_url"]}, {"required": ["input_file_base64"]}]


def check_submission(body: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The window and metadata of a submit body, or a 422 naming the field."""
    has_url = body.get("input_file_url") is not None
    has_b64 = body.get("input_file_base64") is not None
    if has_url == has_b64:
        raise ValidationError(
            "Give exactly one of input_file_url and input_file_base64.",
            details=[{"field": "input_file_url", "message": "exactly one input is required"}],
        )
    for name in ("input_file_url", "input_file_base64"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _invalid(name, "must be a string")
    window = body.get("endpoint_completion_window", DEFAULT_WINDOW)
    if not isinstance(window, str) or window not in WINDOWS:  # (a list or dict: unhashable)
        raise _invalid("endpoint_completion_window", f"must be one of {', '.join(WINDOWS)}")
    return window, check_metadata(body.get("metadata"))


def check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    keys, key_len, value_len = wire.METADATA_LIMITS
    if not isinstance(metadata, dict):
        raise _invalid("metadata", "must be an object")
    if len(metadata) > keys:
        raise _invalid("metadata", f"at most {keys} keys")
    for key, value in metadata.items():
        if len(key) > key_len:
            raise _invalid("metadata", f"key '{key[:20]}...' is longer than {key_len} characters")
        if not isinstance(value, str) or len(value) > value_len:
            raise _invalid(
                "metadata", f"value of '{key}' must be a string of at most {value_len} characters"
            )
    return metadata


def decode_base64(text: str) -> bytes:
    if len(text) > MAX_BASE64_BYTES * 4 // 3 + 4:
        raise _invalid(
            "input_file_base64", "inline input is limited to 10 MB; upload a file instead"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("input_file_base64", "not valid base64") from None
    if len(data) > MAX_BASE64_BYTES:
        raise _invalid(
            "input_file_base64", "inline input is limited to 10 MB; upload a file instead"
        )
    return data


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass(frozen=True)
class Limits:
    """The QUOTA_EXCEEDED limits of a submit (a scenario may override each)."""

    max_active_batches: int = Settings.max_active_batches
    max_input_bytes: int = Settings.max_input_bytes
    max_requests_per_batch: int = Settings.max_requests_per_batch

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_active_batches, settings.max_input_bytes, settings.max_requests_per_batch
        )

    def with_overrides(self, overrides: dict[str, int]) -> dict[str, int]:
        return {**vars(self), **overrides}


class Batches:
    """Submit, read, cancel and download batches; the `worker` runs them. Built from a store, a
    clock and a worker alone, it has the happy path, default limits and a seed of 0."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        worker: Worker,
        *,
        files: Files | None = None,
        ids: Ids | None = None,
        scenarios: Scenarios | None = None,
        signer: Signer | None = None,
        limits: Limits | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.store, self.clock, self.worker = store, clock, worker
        self.ids = ids or Ids(0, store)
        self.files = files or Files(store, clock, self.ids)
        self.scenarios = scenarios or worker.scenarios
        self.signer = signer or Signer(0)
        self.limits = limits or Limits()
        self.sources = sources or Sources(SourceConfig())
        self._seq = itertools.count(1)

    async def start(self) -> None:
        self._seq = itertools.count(await self.store.max_seq("batches") + 1)

    def reset_sequence(self) -> None:
        self._seq = itertools.count(1)

    # --- submit --------------------------------------------------------------------------------

    async def create_batch(
        self,
        tenant_id: str,
        body: dict[str, Any],
        scenario_ref: str | None = None,
        base_url: str | None = None,
        endpoint: str | None = None,
    ) -> BatchRecord:
        """Check, store the input and accept the batch (`pending`), or refuse it synchronously.

        The scenario in force (the `X-Emulator-Scenario` header, else the tenant's, else the
        global one) is captured now: its limits apply to this submit, and the batch follows it
        to the end even if the scope's scenario changes meanwhile. A batch made on the OpenAI
        surface names its `endpoint`, which every line's url must match.
        """
        window, metadata = check_submission(body)
        scenario = self._scenario(tenant_id, scenario_ref)
        limits = self.limits.with_overrides(scenario.limits)
        active = await self.store.count_active_batches(tenant_id)
        if active >= limits["max_active_batches"]:
            raise QuotaExceeded(
                f"Concurrent batch limit reached: {active} of {limits['max_active_batches']} "
                "batches are pending or processing."
            )
        source, input_file, made = await self._input(tenant_id, body, limits["max_input_bytes"])
        try:
            if input_file.line_count > limits["max_requests_per_batch"]:
                raise QuotaExceeded(
                    f"Input has {input_file.line_count} requests; the per-batch limit is "
                    f"{limits['max_requests_per_batch']}."
                )
            batch = await self._accept(tenant_id, scenario, source, input_file, window,
                                       metadata, base_url, endpoint)  # fmt: skip
            # an input made for this submit is stored with the batch, in one transaction
            await self.store.insert_batch(batch, input_file if made is not None else None)
        except BaseException:
            if made is not None:
                await self.files.discard(made)
            raise
        self.worker.kick()
        return batch

    async def _accept(
        self,
        tenant_id: str,
        scenario: Scenario,
        source: str | None,
        input_file: FileRecord,
        window: str,
        metadata: dict[str, str],
        base_url: str | None,
        endpoint: str | None,
    ) -> BatchRecord:
        """The new batch's record, `pending`, with its id and plan."""
        now = self.clock.now()
        seq = next(self._seq)
        batch_id = await self.ids.mint("batch_", "batch", tenant_id)
        plan = self.scenarios.plan(scenario, batch_id)
        return BatchRecord(
            seq=seq,
            id=batch_id,
            tenant_id=tenant_id,
            status=BatchStatus.PENDING,
            completion_window=window,
            input_file_id=input_file.id,
            input_file_url=source or f"scaigrid://file/{input_file.id}",
            metadata=metadata,
            total_count=input_file.line_count,
            created_at=now,
            expires_at=now + plan.window_seconds(WINDOWS[window].seconds),
            scenario=scenario.name,
            # base_url: where the client reached us, for the image links its results carry
            extra={
                # shown until a request is priced: the default discount of the window
                "discount": str(WINDOWS[window].default_discount),
                "scenario": scenario.text,
                "base_url": base_url,
                **({"endpoint": endpoint} if endpoint is not None else {}),
            },
        )

    def _scenario(self, tenant_id: str, ref: str | None) -> Scenario:
        """The scenario in force: the named one (the submit's header), else the tenant's. A
        named scenario whose rules all act on API calls would do nothing to the batch: refused,
        rather than silently ignored."""
        if not ref:
            return self.scenarios.for_tenant(tenant_id)
        scenario = self.scenarios.resolve(ref)
        if scenario.only_acts_on_api_calls():
            raise ValidationError(
                f"Scenario '{scenario.name}' only has API-level rules (api_faults, rate_limit), "
                "which act on API calls, not on a batch.",
                details=[
                    {
                        "field": "X-Emulator-Scenario",
                        "message": "set it for the tenant (PUT /_emulator/tenants/{id}/scenario) "
                        "or globally (PUT /_emulator/scenario) to have it act on API calls",
                    }
                ],
            )
        return scenario

    async def _input(
        self, tenant_id: str, body: dict[str, Any], max_bytes: int
    ) -> tuple[str | None, FileRecord, Content | None]:
        """The input file, the URL it came from (None for inline base64), and, for an input
        made for this submit, its content: stored, while its record is not yet."""
        files = self.files
        if body.get("input_file_base64") is not None:
            data = decode_base64(body["input_file_base64"])
            return None, *await self._made(tenant_id, "input.jsonl", _one(data), max_bytes)
        url: str = body["input_file_url"]
        if scheme_of(url) == "scaigrid":
            file_id = url.removeprefix("scaigrid://file/")
            if file_id == url or not file_id:
                raise _invalid(
                    "input_file_url", "scaigrid:// URLs look like scaigrid://file/{file_id}"
                )
            found = await files.get_file(tenant_id, file_id)
            if found.bytes > max_bytes:
                raise QuotaExceeded(f"Input file is over the {max_bytes}-byte limit.")
            return url, found, None
        name = posixpath.basename(urlsplit(url).path) or "input.jsonl"
        return url, *await self._made(tenant_id, name, self.sources.read(url), max_bytes)

    async def _made(
        self, tenant_id: str, name: str, chunks: AsyncIterator[bytes], max_bytes: int
    ) -> tuple[FileRecord, Content]:
        content = await self.files.store_content(chunks, max_bytes)
        try:
            return await self.files.new_record(tenant_id, name, "batch", content), content
        except BaseException:
            await self.files.discard(content)
            raise

    # --- read ----------------------------------------------------------------------------------

    async def get_batch(self, tenant_id: str, batch_id: str) -> BatchRecord:
        found = await self.store.get_batch(tenant_id, batch_id)
        if found is None:
            raise BatchNotFound(f"Batch '{batch_id}' not found.")
        return found

    async def list_batches(
        self, tenant_id: str, limit: int, before_seq: int | None, status: str | None
    ) -> tuple[list[BatchRecord], bool]:
        if status is not None and status not in BatchStatus.__members__.values():
            raise _invalid("status", f"must be one of {', '.join(s.value for s in BatchStatus)}")
        rows = await self.store.list_batches(tenant_id, limit + 1, before_seq, status)
        return rows[:limit], len(rows) > limit

    # --- cancel --------------------------------------------------------------------------------

    async def cancel_batch(self, tenant_id: str, batch_id: str) -> BatchRecord:
        batch = await self.get_batch(tenant_id, batch_id)
        if is_final(batch.status):
            raise BatchNotCancellable(f"Batch '{batch_id}' is already {batch.status}.")
        return await self.worker.cancel(batch)

    # --- results -------------------------------------------------------------------------------

    def results_link(self, batch: BatchRecord, base_url: str) -> tuple[str | None, float | None]:
        """A fresh pre-signed results URL and its expiry for a finished batch; else (None, None)."""
        if batch.status not in (BatchStatus.COMPLETED, BatchStatus.CANCELLED):
            return None, None
        expires = self.clock.now() + RESULTS_URL_TTL  # to the millisecond, as timestamps are
        path = f"/v1/inference/batch/{batch.id}/results"
        return f"{base_url.rstrip('/')}{path}?{self.signer.query(path, expires)}", expires

    def to_wire(self, batch: BatchRecord, base_url: str) -> dict[str, Any]:
        return wire.batch(batch, *self.results_link(batch, base_url))

    async def results_batch(self, batch_id: str) -> BatchRecord | None:
        """The batch a results link names, whatever its tenant (the link has no key), before
        the link is checked: the journal files the download, refused or not, under its owner."""
        return await self.store.get_batch_any(batch_id)

    def open_results(
        self,
        batch: BatchRecord | None,
        batch_id: str,
        path: str,
        expires: str | None,
        signature: str | None,
    ) -> AsyncIterator[bytes]:
        """Check a pre-signed link to `batch` (`results_batch`) and return the results stream
        (JSONL, input order)."""
        self.signer.verify(path, expires, signature, self.clock.now())
        if batch is None:
            raise BatchNotFound(f"Batch '{batch_id}' not found.")
        return self._results(batch.seq)

    async def _results(self, batch_seq: int) -> AsyncIterator[bytes]:
        async for rows in self.store.iter_results(batch_seq):
            yield b"".join(wire.result_line(cid, ok, payload) for cid, ok, payload in rows)
