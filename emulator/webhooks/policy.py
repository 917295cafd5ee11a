"""The delivery rules ScaiGrid documents: the retry schedule, the ack deadline, auto-disable."""

from __future__ import annotations

from emulator.records import DeliveryRecord

#: retry n -> seconds after the delivery's first failure (ScaiGrid: attempts 2..6 at 30 s,
#: 2 min, 10 min, 30 min and 2 h). Counted from the first failure, not from the attempt before,
#: so advancing the clock 2 h makes every one of them due.
RETRY_AFTER_FIRST_FAILURE: dict[int, float] = {1: 30, 2: 120, 3: 600, 4: 1800, 5: 7200}
#: retries beyond the documented five (max_retries up to MAX_RETRIES) come this much apart
LATER_RETRY_EVERY = 7200.0
DEFAULT_MAX_RETRIES = 5
MAX_RETRIES = 10
#: a receiver must answer 2xx within this many real seconds
ACK_TIMEOUT = 10.0
#: failed attempts in a row after which a webhook is disabled
AUTO_DISABLE_AFTER = 50

PENDING, SUCCESS, FAILED = "pending", "success", "failed"
DELIVERY_STATUSES = (SUCCESS, FAILED, PENDING)


def retry_offset(n: int) -> float:
    """Seconds from the first failure to retry `n` (1-based)."""
    last = max(RETRY_AFTER_FIRST_FAILURE)
    if n <= last:
        return RETRY_AFTER_FIRST_FAILURE[n]
    return RETRY_AFTER_FIRST_FAILURE[last] + LATER_RETRY_EVERY * (n - last)


def after_attempt(d: DeliveryRecord, ok: bool, now: float, max_retries: int) -> None:
    """Settle `d` after an attempt (already counted in `d.attempts`): delivered, due again at
    its next retry, or permanently failed once its retries are used up."""
    if ok:
        d.status, d.next_attempt_at = SUCCESS, None
        return
    if d.first_failed_at is None:
        d.first_failed_at = now
    retry = d.attempts  # after attempt k fails, retry k is next
    if retry > max_retries:
        d.status, d.next_attempt_at = FAILED, None
        return
    d.next_attempt_at = d.first_failed_at + retry_offset(retry)
