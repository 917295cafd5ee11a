"""Stored state as typed records: what the store returns and the domain works on.

How a record looks on the wire is `emulator.wire`'s business, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from emulator.status import STAMPS, BatchStatus, check_move


@dataclass(slots=True)
class FileRecord:
    seq: int
    id: str
    tenant_id: str
    filename: str
    purpose: str
    bytes: int
    line_count: int
    sha256: str
    created_at: float


@dataclass(slots=True)
class BatchRecord:
    seq: int
    id: str
    tenant_id: str
    status: str
    completion_window: str
    input_file_id: str
    input_file_url: str
    metadata: dict[str, str]
    total_count: int
    created_at: float
    expires_at: float
    completed_count: int = 0
    failed_count: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    cancelled_at: float | None = None
    failed_at: float | None = None
    error: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_live: Decimal = Decimal(0)
    cost_amount: Decimal = Decimal(0)
    scenario: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def move(self, to: BatchStatus, at: float, **changes: Any) -> tuple[str, ...]:
        """Enter status `to` at instant `at` (if the status table allows it), with any other
        field `changes` that go with it; the names of every field changed, for the store."""
        self.status = check_move(self.status, to)
        stamp = STAMPS[to]
        setattr(self, stamp, at)
        for name, value in changes.items():
            setattr(self, name, value)
        return ("status", stamp, *changes)

    def note(self, **notes: Any) -> tuple[str, ...]:
        """Add `notes` to the batch's `extra`; the field changed, for the store."""
        self.extra = {**self.extra, **notes}
        return ("extra",)


@dataclass(slots=True)
class RequestRecord:
    """One line of a batch's input, as parsed at validation time; `idx` is its 0-based position
    among the batch's requests, `line` its 1-based line number in the file."""

    idx: int
    line: int
    custom_id: str
    url: str
    body: Any


#: a parsed request as stored: (idx, line, custom_id, url, the input line's raw bytes)
RequestRow = tuple[int, int, str, str, bytes]


@dataclass(slots=True)
class ResultRecord:
    """One result line: `payload` is the response data object (ok) or the error object, as JSON."""

    idx: int
    custom_id: str
    ok: bool
    payload: bytes
    input_tokens: int = 0
    output_tokens: int = 0
    cost_live: Decimal = Decimal(0)
    cost_amount: Decimal = Decimal(0)


@dataclass(slots=True)
class WebhookRecord:
    """A tenant's webhook. The secret is write-only: no wire shape, dump or log line shows it
    (`repr=False` keeps it out of reprs and tracebacks too)."""

    seq: int
    id: str
    tenant_id: str
    partner_id: str
    url: str
    events: list[str]
    secret: str = field(repr=False)
    status: str = "active"
    max_retries: int = 5
    created_at: float = 0.0
    updated_at: float = 0.0
    consecutive_failures: int = 0
    disabled_at: float | None = None


@dataclass(slots=True)
class EventRecord:
    """An event as it is delivered: `body` is the exact JSON every attempt sends and signs.
    `batch_seq` names the batch whose final status it reports (one event per batch)."""

    seq: int
    id: str
    tenant_id: str
    type: str
    body: bytes
    created_at: float
    batch_seq: int | None = None


@dataclass(slots=True)
class DeliveryRecord:
    """One event on its way to one webhook, with the outcome of its latest attempt. `chaos`
    holds what a scenario decided for it when it was made (so a restart keeps the decision)."""

    seq: int
    id: str
    webhook_seq: int
    event_seq: int
    created_at: float
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: float | None = None
    first_failed_at: float | None = None
    last_attempt_at: float | None = None
    status_code: int | None = None
    error_message: str | None = None
    duration_ms: int | None = None
    chaos: dict[str, Any] = field(default_factory=dict)
    # read with the delivery (joined), never written from here
    webhook_id: str = ""
    event_id: str = ""
    event_type: str = ""


@dataclass(frozen=True, slots=True)
class Model:
    """One model of the catalogue (`emulator.inference.catalogue` loads and checks them)."""

    slug: str
    display_name: str
    modality: str
    context_window: int
    input_price_per_mtok: Decimal
    output_price_per_mtok: Decimal
    batch_discount: dict[str, Decimal]
    status: str = "active"
    max_output_tokens: int | None = None
    dimensions: int | None = None
    price_per_image: Decimal | None = None
    image_sizes: tuple[str, ...] = ()  # an image model's sizes ("WxH"); () for other models
    extra: dict[str, Any] = field(default_factory=dict)
