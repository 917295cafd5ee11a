"""Batch statuses and the transitions between them: one table, checked on every change."""

from __future__ import annotations

from enum import StrEnum

from emulator.errors import InvalidTransition


class BatchStatus(StrEnum):
    #: accepted and stored, not started yet
    PENDING = "pending"
    #: requests are being run
    PROCESSING = "processing"
    #: every request has a result line (some may be error records)
    COMPLETED = "completed"
    #: a fatal problem, usually input parsing; no results
    FAILED = "failed"
    #: cancelled; finished requests keep their results
    CANCELLED = "cancelled"


#: from -> the statuses it may move to. A batch too slow for its window still goes
#: processing -> completed, with `COMPLETION_WINDOW_EXPIRED` records for the unfinished requests.
TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.PENDING: frozenset(
        {BatchStatus.PROCESSING, BatchStatus.FAILED, BatchStatus.CANCELLED}
    ),
    BatchStatus.PROCESSING: frozenset({BatchStatus.COMPLETED, BatchStatus.CANCELLED}),
    BatchStatus.COMPLETED: frozenset(),
    BatchStatus.FAILED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
}

#: the timestamp field a batch sets when it enters each status
STAMPS: dict[BatchStatus, str] = {
    BatchStatus.PROCESSING: "started_at",
    BatchStatus.COMPLETED: "completed_at",
    BatchStatus.FAILED: "failed_at",
    BatchStatus.CANCELLED: "cancelled_at",
}

ACTIVE = frozenset({BatchStatus.PENDING, BatchStatus.PROCESSING})
FINAL = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)


def can_move(current: str, to: str) -> bool:
    return BatchStatus(to) in TRANSITIONS[BatchStatus(current)]


def check_move(current: str, to: str) -> str:
    """`to`, if the table allows moving there from `current`; `InvalidTransition` otherwise."""
    if not can_move(current, to):
        raise InvalidTransition(f"A batch cannot go from {current} to {to}.")
    return to


def is_final(status: str) -> bool:
    return BatchStatus(status) in FINAL


# --- the OpenAI view ---------------------------------------------------------------------------


class OaiStatus(StrEnum):
    """OpenAI's eight batch statuses (the `/oai/v1` view of the same batches)."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    """What the native status does not say, and OpenAI's does: a processing batch whose requests
    have all finished, or whose cancel takes time; a completed batch whose window ran out."""

    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    EXPIRED = "expired"


#: (native status, phase) -> OpenAI status. The native view never shows the transitional states:
#: a batch that is finalizing or cancelling is `processing` there until it reaches its end.
OAI_STATUS: dict[tuple[BatchStatus, Phase | None], OaiStatus] = {
    (BatchStatus.PENDING, None): OaiStatus.VALIDATING,
    (BatchStatus.PROCESSING, None): OaiStatus.IN_PROGRESS,
    (BatchStatus.PROCESSING, Phase.FINALIZING): OaiStatus.FINALIZING,
    (BatchStatus.PROCESSING, Phase.CANCELLING): OaiStatus.CANCELLING,
    (BatchStatus.COMPLETED, None): OaiStatus.COMPLETED,
    (BatchStatus.COMPLETED, Phase.EXPIRED): OaiStatus.EXPIRED,
    (BatchStatus.FAILED, None): OaiStatus.FAILED,
    (BatchStatus.CANCELLED, None): OaiStatus.CANCELLED,
}


def oai_status(status: str, phase: Phase | None) -> OaiStatus:
    return OAI_STATUS[(BatchStatus(status), phase)]
