"""The OpenAI view of the one batch and file store (`/oai/v1/batches`, `/oai/v1/files`).

Nothing is stored twice. A batch or a file made on either surface is the same row; an OpenAI
output or error file is the batch's stored results, converted line by line as it streams. What
one pass of that conversion learns (each file's lines and bytes, how many requests the window or a
cancel left unrun) is kept in the finished batch's `extra`: a final batch never changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from emulator import seeded, wire
from emulator.batch.service import Batches, check_metadata
from emulator.endpoints import OPENAI_PATHS
from emulator.errors import BatchNotCancellable, FileNotFound, ValidationError
from emulator.ids import Ids
from emulator.records import BatchRecord, FileRecord
from emulator.schema import enum, nullable, obj, string
from emulator.status import BatchStatus, Phase, is_final, oai_status
from emulator.windows import WINDOWS
from emulator.wire_oai import (
    ERRORS,
    OUTPUT,
    RESULT_FILE,
    BatchFacts,
    batch_of_result_file,
    result_file_id,
    result_line,
)

#: purposes an upload may name (OpenAI's upload enum); `batch_output` is the service's own
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
ORDERS = ("asc", "desc")
#: a batch submitted natively may mix routes, so it has no one endpoint
MIXED_ENDPOINT = "*"
#: the native code of a request a batch never ran -> what the summary counts it as
_UNRUN = {"COMPLETION_WINDOW_EXPIRED": "expired", "BATCH_CANCELLED": "cancelled"}


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {field}: {message}.", details=[{"field": field, "message": message}]
    )


#: the create body `check_create` accepts, as JSON Schema (other keys are ignored)
CREATE = obj(
    {
        "input_file_id": string("the id of an uploaded file", minLength=1),
        "endpoint": enum(OPENAI_PATHS),
        "completion_window": enum(WINDOWS),
    },
    {"metadata": nullable(wire.METADATA)},
    extra=True,
)


def check_create(body: dict[str, Any]) -> tuple[str, str, str, dict[str, str]]:
    """(input file id, endpoint, window, metadata) of a create body, or a 400 naming the field."""
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise _invalid("input_file_id", "must be the id of an uploaded file")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or endpoint not in OPENAI_PATHS:
        raise _invalid("endpoint", f"must be one of {', '.join(OPENAI_PATHS)}")
    window = body.get("completion_window")
    if not isinstance(window, str) or window not in WINDOWS:  # (a list or dict: unhashable)
        raise _invalid("completion_window", f"must be one of {', '.join(WINDOWS)}")
    return file_id, endpoint, window, check_metadata(body.get("metadata"))


class OaiView:
    """Batches and files as OpenAI shows them, over the native services."""

    def __init__(self, batches: Batches, ids: Ids) -> None:
        self.batches, self.ids = batches, ids
        self.store, self.files = batches.store, batches.files

    # --- batches -------------------------------------------------------------------------------

    async def create_batch(
        self, tenant_id: str, body: dict[str, Any], scenario_ref: str | None, base_url: str
    ) -> tuple[BatchRecord, BatchFacts]:
        file_id, endpoint, window, metadata = check_create(body)
        try:
            await self.files.get_file(tenant_id, file_id)
        except FileNotFound:  # OpenAI: a bad parameter of the create call, hence a 400
            raise _invalid("input_file_id", f"cannot find file {file_id}") from None
        native = {
            "input_file_url": f"scaigrid://file/{file_id}",
            "endpoint_completion_window": window,
            "metadata": metadata,
        }
        batch = await self.batches.create_batch(
            tenant_id, native, scenario_ref, base_url, endpoint=endpoint
        )
        return batch, await self.facts(batch)

    async def get_batch(self, tenant_id: str, batch_id: str) -> tuple[BatchRecord, BatchFacts]:
        batch = await self.batches.get_batch(tenant_id, batch_id)
        return batch, await self.facts(batch)

    async def list_batches(
        self, tenant_id: str, after: str | None, limit: int
    ) -> tuple[list[tuple[BatchRecord, BatchFacts]], bool]:
        """Newest first; `after` is the id of the last batch of the previous page."""
        before = None
        if after:
            found = await self.store.get_batch(tenant_id, after)
            if found is None:
                raise _invalid("after", f"no batch {after}")
            before = found.seq
        rows, more = await self.batches.list_batches(tenant_id, limit, before, None)
        return [(b, await self.facts(b)) for b in rows], more

    async def cancel_batch(self, tenant_id: str, batch_id: str) -> tuple[BatchRecord, BatchFacts]:
        batch = await self.batches.get_batch(tenant_id, batch_id)
        if is_final(batch.status):  # named by its OpenAI status, as OpenAI's message does
            status = (await self.facts(batch)).status
            raise BatchNotCancellable(f"Cannot cancel a batch with status '{status}'.")
        batch = await self.batches.cancel_batch(tenant_id, batch_id)
        return batch, await self.facts(batch)

    async def facts(self, b: BatchRecord) -> BatchFacts:
        """The OpenAI status, counts, result files and transitional stamps of a batch."""
        endpoint = b.extra.get("endpoint") or MIXED_ENDPOINT
        if b.status in (BatchStatus.PENDING, BatchStatus.FAILED):
            # OpenAI counts requests once they are validated
            return BatchFacts(oai_status(b.status, None), endpoint, (0, 0, 0))
        if b.status == BatchStatus.PROCESSING:
            return self._processing(b, endpoint)
        summary = await self._summary(b)
        phase = Phase.EXPIRED if summary["expired"] else None
        files = {k: self._file_id(b, k) if summary[k][0] else None for k in (OUTPUT, ERRORS)}
        unrun = summary["expired"] + summary["cancelled"]
        finalizing_at = None
        if b.status == BatchStatus.COMPLETED and phase is None:
            assert b.completed_at is not None
            finalizing_at = b.completed_at - self.batches.scenarios.plan_for(b).finalize
        return BatchFacts(
            oai_status(b.status, phase),
            endpoint,
            (b.total_count, b.completed_count, b.failed_count - unrun),
            output_file_id=files[OUTPUT],
            error_file_id=files[ERRORS],
            finalizing_at=finalizing_at,
            cancelling_at=b.extra.get("cancelling_at", b.cancelled_at),
        )

    def _processing(self, b: BatchRecord, endpoint: str) -> BatchFacts:
        counts = (b.total_count, b.completed_count, b.failed_count)
        if "cancel_at" in b.extra:
            status = oai_status(b.status, Phase.CANCELLING)
            return BatchFacts(status, endpoint, counts, cancelling_at=b.extra["cancelling_at"])
        if b.total_count and b.completed_count + b.failed_count >= b.total_count:
            assert b.started_at is not None
            plan = self.batches.scenarios.plan_for(b)
            last = b.started_at + max(plan.schedule(b.total_count))
            status = oai_status(b.status, Phase.FINALIZING)
            return BatchFacts(status, endpoint, counts, finalizing_at=last)
        return BatchFacts(oai_status(b.status, None), endpoint, counts)

    # --- result files --------------------------------------------------------------------------

    def _file_id(self, b: BatchRecord, kind: str) -> str:
        return result_file_id(b.id, kind)

    async def _summary(self, b: BatchRecord) -> dict[str, Any]:
        """{output: [lines, bytes], errors: [lines, bytes], expired: n, cancelled: n,
        deleted: [kinds]} of a final batch, counted once and kept with it."""
        found: dict[str, Any] | None = b.extra.get("oai")
        if found is None:
            found = {OUTPUT: [0, 0], ERRORS: [0, 0], "expired": 0, "cancelled": 0}
            async for kind, leftover, line in self._lines(b):
                found[kind][0] += 1
                found[kind][1] += len(line)
                if leftover is not None:
                    found[
                        "expired" if leftover == "COMPLETION_WINDOW_EXPIRED" else "cancelled"
                    ] += 1
            await self._keep(b, found)
        return found

    async def _keep(self, b: BatchRecord, summary: dict[str, Any]) -> None:
        await self.store.update_batch(b, b.note(oai=summary))

    async def _lines(self, b: BatchRecord) -> AsyncIterator[tuple[str, str | None, bytes]]:
        seed = self.ids.seed
        async for rows in self.store.iter_results(b.seq):
            for custom_id, ok, payload in rows:
                digest = seeded.hexdigest(seed, "batch_req", b.id, custom_id, length=56)
                yield result_line(
                    "batch_req_" + digest[:32], "req_" + digest[32:], custom_id, ok, payload
                )

    async def _result_files(self, b: BatchRecord) -> list[FileRecord]:
        if b.status not in (BatchStatus.COMPLETED, BatchStatus.CANCELLED):
            return []
        summary = await self._summary(b)
        at = b.completed_at if b.completed_at is not None else b.cancelled_at
        assert at is not None
        return [
            FileRecord(
                b.seq,
                self._file_id(b, kind),
                b.tenant_id,
                f"{b.id}_{kind}.jsonl",
                "batch_output",
                summary[kind][1],
                summary[kind][0],
                "",
                at,
            )  # fmt: skip
            for kind in (OUTPUT, ERRORS)
            if summary[kind][0] and kind not in summary.get("deleted", ())
        ]

    async def _result_file(self, tenant_id: str, file_id: str) -> tuple[BatchRecord, FileRecord]:
        """The batch and file record behind an output or error file id; 404 if there is none."""
        batch_id = batch_of_result_file(file_id)
        batch = None
        if batch_id is not None:
            batch = await self.store.get_batch(tenant_id, batch_id)
        found = [f for f in await self._result_files(batch) if f.id == file_id] if batch else []
        if batch is None or not found:
            raise FileNotFound(f"No such File object: {file_id}")
        return batch, found[0]

    # --- files ---------------------------------------------------------------------------------

    async def get_file(self, tenant_id: str, file_id: str) -> FileRecord:
        if RESULT_FILE.fullmatch(file_id):
            return (await self._result_file(tenant_id, file_id))[1]
        return await self.files.get_file(tenant_id, file_id)

    async def content(
        self, tenant_id: str, file_id: str
    ) -> tuple[FileRecord, AsyncIterator[bytes]]:
        if not RESULT_FILE.fullmatch(file_id):
            f = await self.files.get_file(tenant_id, file_id)
            return f, self.files.content(f)
        batch, f = await self._result_file(tenant_id, file_id)
        return f, self._stream(batch, file_id.rpartition("-")[2])

    async def _stream(self, b: BatchRecord, kind: str) -> AsyncIterator[bytes]:
        chunk: list[bytes] = []
        async for line_kind, _, line in self._lines(b):
            if line_kind == kind:
                chunk.append(line)
            if len(chunk) >= 1000:
                yield b"".join(chunk)
                chunk = []
        if chunk:
            yield b"".join(chunk)

    async def delete_file(self, tenant_id: str, file_id: str) -> None:
        if not RESULT_FILE.fullmatch(file_id):
            await self.files.delete_file(tenant_id, file_id)
            return
        batch, _ = await self._result_file(tenant_id, file_id)
        summary = await self._summary(batch)
        deleted = [*summary.get("deleted", ()), file_id.rpartition("-")[2]]
        await self._keep(batch, {**summary, "deleted": deleted})

    async def list_files(
        self, tenant_id: str, after: str | None, limit: int, order: str, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        """Uploads and result files together, by creation time (`order`), `after` an id."""
        if order not in ORDERS:
            raise _invalid("order", "must be asc or desc")
        records = list(await self.store.all_files(tenant_id))
        for b in await self.store.all_batches(tenant_id):
            records += await self._result_files(b)
        if purpose is not None:
            records = [f for f in records if f.purpose == purpose]
        records.sort(key=lambda f: (f.created_at, f.seq, f.id), reverse=order == "desc")
        start = 0
        if after:
            ids = [f.id for f in records]
            if after not in ids:
                raise _invalid("after", f"no file {after}")
            start = ids.index(after) + 1
        return records[start : start + limit], start + limit < len(records)
