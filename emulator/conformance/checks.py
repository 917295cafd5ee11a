"""The table of checks: one per row of the README's assumptions table (named by the row's id),
each an async function of a `Probe` (in `reads`, `batches` and `webhooks`) that returns what it
saw, or raises `Mismatch` with what it expected.

The expected shapes come from the emulator's own declarations (`wire`, `errors`, `status`,
`windows`, the catalogue's vocabularies), so a corrected assumption changes the check with it;
every request goes over HTTP, so the same checks run against the real service.

A check that sends anything but a GET is declared `writes`: it creates data or may cost money,
and runs only with `--allow-writes`. What it creates and can delete, it deletes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from emulator.conformance.batches import (
    batch_object,
    cancel,
    error_codes,
    files_api,
    inline_input,
    input_choice,
    input_parse_errors,
    results,
    statuses,
    submit_response,
)
from emulator.conformance.probe import Probe
from emulator.conformance.reads import (
    auth_codes,
    envelope,
    model_object,
    not_found_codes,
    pagination,
    pricing,
    rate_limit_headers,
    request_id_header,
)
from emulator.conformance.webhooks import (
    delivered_body,
    test_events,
    webhook_headers,
    webhook_objects,
)

# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    #: the id of the README assumptions-table row the check tests
    name: str
    #: sends anything but a GET: creates data or may cost money
    writes: bool
    run: Callable[[Probe], Awaitable[str]]
    about: str


CHECKS: tuple[Check, ...] = (
    Check("envelope", False, envelope, "success, list and error envelopes"),
    Check("auth-codes", False, auth_codes, "401 codes without a key and with a bad one"),
    Check("request-id-header", False, request_id_header, "X-Request-ID = meta.request_id"),
    Check("not-found-codes", False, not_found_codes, "404 codes of missing ids and routes"),
    Check("pagination", False, pagination, "list shape, default limit, cursors"),
    Check("model-object", False, model_object, "the fields of the models"),
    Check("pricing", False, pricing, "prices and batch discounts of the models"),
    Check("rate-limit-headers", False, rate_limit_headers, "X-Scaigrid-Ratelimit-* when sent"),
    Check("error-codes", True, error_codes, "422 VALIDATION_ERROR with details"),
    Check("input-choice", True, input_choice, "422 for neither or both inputs"),
    Check("inline-input", True, inline_input, "422 for base64 that does not decode"),
    Check("files-api", True, files_api, "upload, read and delete a file"),
    Check("submit-response", True, submit_response, "submit a one-line batch: 200 and the batch"),
    Check("batch-object", True, batch_object, "the batch object's fields"),
    Check("statuses", True, statuses, "the status flow to completed"),
    Check("results", True, results, "the results link and its JSONL"),
    Check("cancel", True, cancel, "cancel a final batch (409) and an active one"),
    Check("input-parse-errors", True, input_parse_errors, "a batch whose input does not parse"),
    Check("webhook-objects", True, webhook_objects, "register, read and delete a webhook"),
    Check("test-events", True, test_events, "the test route's answer and event"),
    Check("webhook-headers", True, webhook_headers, "the delivery's signature and headers"),
    Check("delivered-body", True, delivered_body, "the delivered event envelope"),
)
BY_NAME = {c.name: c for c in CHECKS}
