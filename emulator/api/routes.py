"""The route table: every endpoint the emulator serves, in one list, each with the summary and
the declarations (query, body, answer) its OpenAPI operation shows (`emulator.api.openapi`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from emulator import wire, wire_control, wire_oai
from emulator.api import batches, control, files, inference, models, observe, sink, ui, webhooks
from emulator.api.oai import batches as oai_batches
from emulator.api.oai import files as oai_files
from emulator.api.oai import inference as oai_inference
from emulator.api.openapi import OPEN, Doc, download, native, oai, paged, upload
from emulator.api.openapi import control as ctl
from emulator.api.openapi import inference as infer
from emulator.api.openapi import oai_inference as oai_infer
from emulator.batch.oai import CREATE as OAI_CREATE
from emulator.batch.service import SUBMIT
from emulator.endpoints import CHAT, EMBED, ENDPOINTS, GENERATE
from emulator.inference import shapes
from emulator.schema import ANY, TEXT, one_of
from emulator.webhooks import sink as sinks
from emulator.webhooks.service import body_schema

JSONL, OCTETS = "application/jsonl", "application/octet-stream"
_CONTROL = wire_control.CONTROL_BODIES
_QUERIES = wire_control.CONTROL_QUERIES
_SINK_POST = Doc(
    {"application/json": wire.ok_of(wire.SINK_ACK)},
    sinks.QUERY,
    {"application/octet-stream": ANY},
    body_required=False,
    errors=one_of(wire.ok_of(wire.SINK_ACK), wire.ERROR),  # the chosen status, same envelope
    security=OPEN,
)


class Op(Route):
    """A route for one method, with its one-line summary and what the document says of it."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], method: str, summary: str, doc: Doc
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.summary = summary
        self.doc = doc


# fmt: off
ROUTES: list[Route] = [
    # live inference first: the router tries routes in order, and these are the hot path
    *(Op(e.path, inference.HANDLERS[e.path], "POST", e.summary, infer(e.path)) for e in ENDPOINTS.values()),
    Op("/v1/inference/images/{digest:str}.png", inference.image_content, "GET", "Pre-signed image content (no auth)", download("image/png", wire.SIGNED, security=OPEN)),
    # models
    Op("/v1/models", models.list_models, "GET", "List models (filters modality, status; limit, cursor)", paged(wire.MODEL, models.LIST_QUERY)),
    Op("/v1/models/{slug:path}", models.get_model, "GET", "Get a model by URL-encoded slug", native(wire.MODEL)),
    # batches
    Op("/v1/inference/batch", batches.create_batch, "POST", "Submit a batch", native(wire.BATCH, body=SUBMIT)),
    Op("/v1/inference/batch", batches.list_batches, "GET", "List batches, newest first (filter status)", paged(wire.BATCH, batches.LIST_QUERY)),
    Op("/v1/inference/batch/{batch_id}", batches.get_batch, "GET", "Batch status", native(wire.BATCH)),
    Op("/v1/inference/batch/{batch_id}/cancel", batches.cancel_batch, "POST", "Cancel a batch", native(wire.BATCH)),
    Op("/v1/inference/batch/{batch_id}/results", batches.get_results, "GET", "Pre-signed results, JSONL (no auth)", download(JSONL, wire.SIGNED, security=OPEN)),
    # files
    Op("/v1/files", files.create_file, "POST", "Upload a file (multipart, field file)", upload(wire.FILE, files.FORM)),
    Op("/v1/files", files.list_files, "GET", "List files", paged(wire.FILE, files.LIST_QUERY)),
    Op("/v1/files/{file_id}", files.get_file, "GET", "Get a file", native(wire.FILE)),
    Op("/v1/files/{file_id}", files.delete_file, "DELETE", "Delete a file", native(wire.DELETED)),
    Op("/v1/files/{file_id}/content", files.get_file_content, "GET", "Download a file's content", download(OCTETS)),
    # the OpenAI-compatible surface: the same batches, files and engine in OpenAI's wire format
    Op("/oai/v1/chat/completions", oai_inference.chat_completions, "POST", "OpenAI: chat completion (stream: true for SSE)", oai_infer(CHAT, shapes.OAI_CHAT)),
    Op("/oai/v1/completions", oai_inference.completions, "POST", "OpenAI: text completion", oai_infer(GENERATE, shapes.OAI_COMPLETION)),
    Op("/oai/v1/embeddings", oai_inference.embeddings, "POST", "OpenAI: embeddings", oai_infer(EMBED, shapes.EMBEDDINGS)),
    Op("/oai/v1/models", oai_inference.list_models, "GET", "OpenAI: list models", oai(wire_oai.MODELS)),
    Op("/oai/v1/models/{model:path}", oai_inference.get_model, "GET", "OpenAI: retrieve a model (URL-encoded id)", oai(wire_oai.MODEL)),
    Op("/oai/v1/files", oai_files.create_file, "POST", "OpenAI: upload a file (multipart: file, purpose)", upload(wire_oai.FILE, oai_files.FORM, wire_oai.ERROR)),
    Op("/oai/v1/files", oai_files.list_files, "GET", "OpenAI: list files (after, limit, order, purpose)", oai(wire_oai.page_of(wire_oai.FILE), oai_files.LIST_QUERY)),
    Op("/oai/v1/files/{file_id}", oai_files.get_file, "GET", "OpenAI: retrieve a file", oai(wire_oai.FILE)),
    Op("/oai/v1/files/{file_id}", oai_files.delete_file, "DELETE", "OpenAI: delete a file", oai(wire_oai.FILE_DELETED)),
    Op("/oai/v1/files/{file_id}/content", oai_files.get_file_content, "GET", "OpenAI: a file's content (also batch output and error files)", download(OCTETS, errors=wire_oai.ERROR)),
    Op("/oai/v1/batches", oai_batches.create_batch, "POST", "OpenAI: create a batch", oai(wire_oai.BATCH, body=OAI_CREATE)),
    Op("/oai/v1/batches", oai_batches.list_batches, "GET", "OpenAI: list batches, newest first (after, limit)", oai(wire_oai.page_of(wire_oai.BATCH), oai_batches.LIST_QUERY)),
    Op("/oai/v1/batches/{batch_id}", oai_batches.get_batch, "GET", "OpenAI: retrieve a batch", oai(wire_oai.BATCH)),
    Op("/oai/v1/batches/{batch_id}/cancel", oai_batches.cancel_batch, "POST", "OpenAI: cancel a batch", oai(wire_oai.BATCH)),
    # webhooks
    Op("/v1/webhooks", webhooks.create_webhook, "POST", "Register a webhook", native(wire.WEBHOOK, body=body_schema(creating=True))),
    Op("/v1/webhooks", webhooks.list_webhooks, "GET", "List webhooks, newest first", paged(wire.WEBHOOK, wire.PAGED)),
    Op("/v1/webhooks/{webhook_id}", webhooks.get_webhook, "GET", "Get a webhook", native(wire.WEBHOOK)),
    Op("/v1/webhooks/{webhook_id}", webhooks.update_webhook, "PUT", "Update url, events, secret, status or max_retries", native(wire.WEBHOOK, body=body_schema(creating=False))),
    Op("/v1/webhooks/{webhook_id}", webhooks.delete_webhook, "DELETE", "Delete a webhook and its in-flight deliveries", native(wire.DELETED)),
    Op("/v1/webhooks/{webhook_id}/test", webhooks.test_webhook, "POST", "Send a synthetic test event now", native(wire.TEST_DELIVERY)),
    Op("/v1/webhooks/{webhook_id}/deliveries", webhooks.list_deliveries, "GET", "Deliveries, newest first (status, since, limit, cursor)", paged(wire.DELIVERY, webhooks.DELIVERIES_QUERY)),
    # the service's own health and metrics, without auth as the real service's
    Op("/health", observe.service_health, "GET", "Liveness and version (no auth)", Doc({"application/json": wire.ok_of(wire_control.HEALTH)}, security=OPEN)),
    Op("/metrics", observe.metrics, "GET", "Prometheus metrics, text format (no auth)", download("text/plain", security=OPEN)),
    # control plane
    Op("/_emulator/health", control.health, "GET", "Liveness and version", Doc({"application/json": wire.ok_of(wire_control.HEALTH)}, security=OPEN)),
    Op("/_emulator/reset", control.reset, "POST", "Clear everything, or tenants ({tenant_id}, {api_key} or {tenant_ids}); {clock}: then freeze the clock there", ctl(wire_control.RESET, body=_CONTROL["reset"].schema(), body_required=False)),
    Op("/_emulator/clock", control.get_clock, "GET", "Read the clock", ctl(wire_control.CLOCK)),
    Op("/_emulator/clock", control.set_clock, "PUT", "Set mode, scale and/or start", ctl(wire_control.CLOCK, body=_CONTROL["clock"].schema())),
    Op("/_emulator/clock/advance", control.advance_clock, "POST", "Advance the clock ({seconds|minutes|hours})", ctl(wire_control.CLOCK, body=_CONTROL["clock/advance"].schema())),
    Op("/_emulator/seed", control.get_seed, "GET", "Read the seed", ctl(wire_control.SEED)),
    Op("/_emulator/seed", control.set_seed, "PUT", "Change the seed", ctl(wire_control.SEED, body=_CONTROL["seed"].schema())),
    Op("/_emulator/scenarios", control.list_scenarios, "GET", "Bundled and loaded scenarios", ctl(wire_control.SCENARIOS)),
    Op("/_emulator/scenario", control.get_scenario, "GET", "The global scenario", ctl(wire_control.SCENARIO)),
    Op("/_emulator/scenario", control.set_scenario, "PUT", "Set the global scenario ({name} or {yaml})", ctl(wire_control.SCENARIO, body=_CONTROL["scenario"].schema())),
    Op("/_emulator/tenants/{tenant}", control.get_tenant, "GET", "The tenant an API key (sgk_...) or tenant id names", ctl(wire_control.TENANT)),
    Op("/_emulator/tenants/{tenant}/scenario", control.get_tenant_scenario, "GET", "A tenant's scenario (tenant id or API key in the path)", ctl(wire_control.SCENARIO)),
    Op("/_emulator/tenants/{tenant}/scenario", control.set_tenant_scenario, "PUT", "Set a tenant's scenario ({name} or {yaml}; tenant id or API key)", ctl(wire_control.SCENARIO, body=_CONTROL["scenario"].schema())),
    Op("/_emulator/tenants/{tenant}/scenario", control.delete_tenant_scenario, "DELETE", "Drop a tenant's scenario (tenant id or API key)", ctl(wire_control.SCENARIO)),
    Op("/_emulator/journal", control.journal, "GET", "Request journal (method, path glob, status or 4xx, tenant_id, since, until, limit)", ctl(wire.items_of(wire_control.JOURNAL_ENTRY), _QUERIES["journal"])),
    Op("/_emulator/verdict", control.verdict, "GET", "Findings on the clients' behaviour (tenant_id, min_poll_interval, rate_limit)", ctl(wire_control.VERDICT, _QUERIES["verdict"])),
    Op("/_emulator/state", control.state, "GET", "A dump of the state", ctl(wire_control.STATE, _QUERIES["state"])),
    Op("/_emulator/changes", control.changes, "GET", "A mark that moves when the state may have changed, and the clock (the dashboard polls it)", ctl(wire_control.CHANGES, _QUERIES["changes"])),
    Op("/_emulator/tenants/{tenant}/batches/{batch_id}/lines", control.tenant_batch_lines, "GET", "A page of a tenant's batch: request lines with their results (offset, limit, status ok|error|pending)", ctl(wire.BATCH_LINES, _QUERIES["tenants/{tenant}/batches/{batch_id}/lines"])),
    Op("/_emulator/tenants/{tenant}/batches/{batch_id}/cancel", control.cancel_tenant_batch, "POST", "Cancel a tenant's batch", ctl(wire.BATCH, body=_CONTROL["tenants/{tenant}/batches/{batch_id}/cancel"].schema(), body_required=False)),
    Op("/_emulator/tenants/{tenant}/webhooks/{webhook_id}/deliveries", control.tenant_webhook_deliveries, "GET", "A tenant's webhook's deliveries, newest first (status, limit)", ctl(wire.items_of(wire.DELIVERY), _QUERIES["tenants/{tenant}/webhooks/{webhook_id}/deliveries"])),
    Op("/_emulator/ui", ui.dashboard, "GET", "The dashboard (its data comes from the control routes)", Doc({"text/html": TEXT}, security=OPEN)),
    Op("/_emulator/ui/{asset}", ui.dashboard_asset, "GET", "The dashboard's script and style sheet", Doc({"text/javascript": TEXT, "text/css": TEXT}, security=OPEN)),
    Op("/_emulator/sink/{name}", sink.receive, "POST", "Built-in webhook receiver (status, count: answer status to the first count posts)", _SINK_POST),
    Op("/_emulator/sink/{name}", sink.received, "GET", "What a sink received: {received_at, headers, body, status} items", ctl(wire.items_of(wire.SINK_ITEM))),
    Op("/openapi.json", control.openapi, "GET", "This document", Doc({"application/json": {"type": "object"}}, security=OPEN)),
]
# fmt: on
