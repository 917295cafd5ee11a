"""The route table: every endpoint the emulator serves, in one list, each with the summary its
OpenAPI operation shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from emulator.api import batches, control, files, inference, models, sink, ui, webhooks
from emulator.api.oai import batches as oai_batches
from emulator.api.oai import files as oai_files
from emulator.api.oai import inference as oai_inference
from emulator.endpoints import ENDPOINTS


class Op(Route):
    """A route for one method, with its one-line summary."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, summary: str) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.summary = summary


# fmt: off
ROUTES: list[Route] = [
    # live inference first: the router tries routes in order, and these are the hot path
    *(Op(e.path, inference.HANDLERS[e.path], "POST", e.summary) for e in ENDPOINTS.values()),
    Op("/v1/inference/images/{digest:str}.png", inference.image_content, "GET", "Pre-signed image content (no auth)"),
    # models
    Op("/v1/models", models.list_models, "GET", "List models (filters modality, status; limit, cursor)"),
    Op("/v1/models/{slug:path}", models.get_model, "GET", "Get a model by URL-encoded slug"),
    # batches
    Op("/v1/inference/batch", batches.create_batch, "POST", "Submit a batch"),
    Op("/v1/inference/batch", batches.list_batches, "GET", "List batches, newest first (filter status)"),
    Op("/v1/inference/batch/{batch_id}", batches.get_batch, "GET", "Batch status"),
    Op("/v1/inference/batch/{batch_id}/cancel", batches.cancel_batch, "POST", "Cancel a batch"),
    Op("/v1/inference/batch/{batch_id}/results", batches.get_results, "GET", "Pre-signed results, JSONL (no auth)"),
    # files
    Op("/v1/files", files.create_file, "POST", "Upload a file (multipart, field file)"),
    Op("/v1/files", files.list_files, "GET", "List files"),
    Op("/v1/files/{file_id}", files.get_file, "GET", "Get a file"),
    Op("/v1/files/{file_id}", files.delete_file, "DELETE", "Delete a file"),
    Op("/v1/files/{file_id}/content", files.get_file_content, "GET", "Download a file's content"),
    # the OpenAI-compatible surface: the same batches, files and engine in OpenAI's wire format
    Op("/oai/v1/chat/completions", oai_inference.chat_completions, "POST", "OpenAI: chat completion (stream: true for SSE)"),
    Op("/oai/v1/completions", oai_inference.completions, "POST", "OpenAI: text completion"),
    Op("/oai/v1/embeddings", oai_inference.embeddings, "POST", "OpenAI: embeddings"),
    Op("/oai/v1/models", oai_inference.list_models, "GET", "OpenAI: list models"),
    Op("/oai/v1/models/{model:path}", oai_inference.get_model, "GET", "OpenAI: retrieve a model (URL-encoded id)"),
    Op("/oai/v1/files", oai_files.create_file, "POST", "OpenAI: upload a file (multipart: file, purpose)"),
    Op("/oai/v1/files", oai_files.list_files, "GET", "OpenAI: list files (after, limit, order, purpose)"),
    Op("/oai/v1/files/{file_id}", oai_files.get_file, "GET", "OpenAI: retrieve a file"),
    Op("/oai/v1/files/{file_id}", oai_files.delete_file, "DELETE", "OpenAI: delete a file"),
    Op("/oai/v1/files/{file_id}/content", oai_files.get_file_content, "GET", "OpenAI: a file's content (also batch output and error files)"),
    Op("/oai/v1/batches", oai_batches.create_batch, "POST", "OpenAI: create a batch"),
    Op("/oai/v1/batches", oai_batches.list_batches, "GET", "OpenAI: list batches, newest first (after, limit)"),
    Op("/oai/v1/batches/{batch_id}", oai_batches.get_batch, "GET", "OpenAI: retrieve a batch"),
    Op("/oai/v1/batches/{batch_id}/cancel", oai_batches.cancel_batch, "POST", "OpenAI: cancel a batch"),
    # webhooks
    Op("/v1/webhooks", webhooks.create_webhook, "POST", "Register a webhook"),
    Op("/v1/webhooks", webhooks.list_webhooks, "GET", "List webhooks, newest first"),
    Op("/v1/webhooks/{webhook_id}", webhooks.get_webhook, "GET", "Get a webhook"),
    Op("/v1/webhooks/{webhook_id}", webhooks.update_webhook, "PUT", "Update url, events, secret, status or max_retries"),
    Op("/v1/webhooks/{webhook_id}", webhooks.delete_webhook, "DELETE", "Delete a webhook and its in-flight deliveries"),
    Op("/v1/webhooks/{webhook_id}/test", webhooks.test_webhook, "POST", "Send a synthetic test event now"),
    Op("/v1/webhooks/{webhook_id}/deliveries", webhooks.list_deliveries, "GET", "Deliveries, newest first (status, since, limit, cursor)"),
    # control plane
    Op("/_emulator/health", control.health, "GET", "Liveness and version"),
    Op("/_emulator/reset", control.reset, "POST", "Clear everything, or tenants ({tenant_id}, {api_key} or {tenant_ids}); {clock}: then freeze the clock there"),
    Op("/_emulator/clock", control.get_clock, "GET", "Read the clock"),
    Op("/_emulator/clock", control.set_clock, "PUT", "Set mode, scale and/or start"),
    Op("/_emulator/clock/advance", control.advance_clock, "POST", "Advance the clock ({seconds|minutes|hours})"),
    Op("/_emulator/seed", control.get_seed, "GET", "Read the seed"),
    Op("/_emulator/seed", control.set_seed, "PUT", "Change the seed"),
    Op("/_emulator/scenarios", control.list_scenarios, "GET", "Bundled and loaded scenarios"),
    Op("/_emulator/scenario", control.get_scenario, "GET", "The global scenario"),
    Op("/_emulator/scenario", control.set_scenario, "PUT", "Set the global scenario ({name} or {yaml})"),
    Op("/_emulator/tenants/{tenant}", control.get_tenant, "GET", "The tenant an API key (sgk_...) or tenant id names"),
    Op("/_emulator/tenants/{tenant}/scenario", control.get_tenant_scenario, "GET", "A tenant's scenario (tenant id or API key in the path)"),
    Op("/_emulator/tenants/{tenant}/scenario", control.set_tenant_scenario, "PUT", "Set a tenant's scenario ({name} or {yaml}; tenant id or API key)"),
    Op("/_emulator/tenants/{tenant}/scenario", control.delete_tenant_scenario, "DELETE", "Drop a tenant's scenario (tenant id or API key)"),
    Op("/_emulator/journal", control.journal, "GET", "Request journal (method, path glob, status or 4xx, tenant_id, since, until, limit)"),
    Op("/_emulator/verdict", control.verdict, "GET", "Findings on the clients' behaviour (tenant_id, min_poll_interval, rate_limit)"),
    Op("/_emulator/state", control.state, "GET", "A dump of the state"),
    Op("/_emulator/changes", control.changes, "GET", "A mark that moves when the state may have changed, and the clock (the dashboard polls it)"),
    Op("/_emulator/tenants/{tenant}/batches/{batch_id}/lines", control.tenant_batch_lines, "GET", "A page of a tenant's batch: request lines with their results (offset, limit, status ok|error|pending)"),
    Op("/_emulator/tenants/{tenant}/batches/{batch_id}/cancel", control.cancel_tenant_batch, "POST", "Cancel a tenant's batch"),
    Op("/_emulator/tenants/{tenant}/webhooks/{webhook_id}/deliveries", control.tenant_webhook_deliveries, "GET", "A tenant's webhook's deliveries, newest first (status, limit)"),
    Op("/_emulator/ui", ui.dashboard, "GET", "The dashboard (its data comes from the control routes)"),
    Op("/_emulator/ui/{asset}", ui.dashboard_asset, "GET", "The dashboard's script and style sheet"),
    Op("/_emulator/sink/{name}", sink.receive, "POST", "Built-in webhook receiver (status, count: answer status to the first count posts)"),
    Op("/_emulator/sink/{name}", sink.received, "GET", "What a sink received: {received_at, headers, body, status} items"),
    Op("/openapi.json", control.openapi, "GET", "This document"),
]
# fmt: on
