"""The OpenAPI 3.1 document of the native and control routes, built from the route table.

Paths come from `emulator.api.routes.ROUTES` so the document cannot drift from what is served;
the summaries and schemas below are the only hand-written part.
"""

from __future__ import annotations

import re
from typing import Any

SUMMARIES: dict[tuple[str, str], str] = {
    ("GET", "/v1/models"): "List models (filters modality, status; limit, cursor)",
    ("GET", "/v1/models/{slug}"): "Get a model by URL-encoded slug",
    ("POST", "/v1/inference/chat"): "Chat completion (stream: true for SSE)",
    ("POST", "/v1/inference/generate"): "Text completion",
    ("POST", "/v1/inference/embed"): "Embeddings",
    ("POST", "/v1/inference/images/generate"): "Image generation",
    ("GET", "/v1/inference/images/{digest}.png"): "Pre-signed image content (no auth)",
    ("POST", "/v1/inference/batch"): "Submit a batch",
    ("GET", "/v1/inference/batch"): "List batches, newest first (filter status)",
    ("GET", "/v1/inference/batch/{batch_id}"): "Batch status",
    ("POST", "/v1/inference/batch/{batch_id}/cancel"): "Cancel a batch",
    ("GET", "/v1/inference/batch/{batch_id}/results"): "Pre-signed results, JSONL (no auth)",
    ("POST", "/v1/files"): "Upload a file (multipart, field file)",
    ("GET", "/v1/files"): "List files",
    ("GET", "/v1/files/{file_id}"): "Get a file",
    ("DELETE", "/v1/files/{file_id}"): "Delete a file",
    ("GET", "/v1/files/{file_id}/content"): "Download a file's content",
    ("GET", "/_emulator/health"): "Liveness and version",
    ("POST", "/_emulator/reset"): "Clear everything, or one tenant ({tenant_id} or {api_key})",
    ("GET", "/_emulator/clock"): "Read the clock",
    ("PUT", "/_emulator/clock"): "Set mode, scale and/or start",
    ("POST", "/_emulator/clock/advance"): "Advance the clock ({seconds|minutes|hours})",
    ("GET", "/_emulator/seed"): "Read the seed",
    ("PUT", "/_emulator/seed"): "Change the seed",
    ("GET", "/_emulator/scenarios"): "Bundled and loaded scenarios",
    ("GET", "/_emulator/scenario"): "The global scenario",
    ("PUT", "/_emulator/scenario"): "Set the global scenario ({name} or {yaml})",
    ("GET", "/_emulator/tenants/{tenant_id}/scenario"): "A tenant's scenario",
    ("PUT", "/_emulator/tenants/{tenant_id}/scenario"): "Set a tenant's scenario",
    ("DELETE", "/_emulator/tenants/{tenant_id}/scenario"): "Drop a tenant's scenario",
    (
        "GET",
        "/_emulator/journal",
    ): "Request journal (method, path, status, tenant_id, since, limit)",
    ("GET", "/_emulator/state"): "A dump of the state",
    ("GET", "/openapi.json"): "This document",
}

_ERROR = {
    "type": "object",
    "required": ["status", "error", "meta"],
    "properties": {
        "status": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "retry_after": {"type": "integer"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "meta": {"type": "object", "properties": {"request_id": {"type": "string"}}},
    },
}
_OK = {
    "type": "object",
    "required": ["status", "data"],
    "properties": {"status": {"const": "ok"}, "data": {}, "pagination": {"type": "object"}},
}


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]


def openapi_document(version: str) -> dict[str, Any]:
    from emulator.api.routes import ROUTES

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = {
                "summary": SUMMARIES.get((method, path), route.name),
                "operationId": f"{route.name}_{method.lower()}",
                "parameters": _path_params(path),
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Ok"}}
                        },
                    },
                    "default": {
                        "description": "Error envelope",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": "scaigrid-emulator", "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Ok": _OK, "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
