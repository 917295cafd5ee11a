"""The OpenAPI 3.1 document of the native and control routes, built from the route table.

The OpenAI-compatible routes (`/oai/v1`) are left out: OpenAI's own document describes them.

Paths and summaries come from the app's route table, so the document cannot drift from what is
served; the schemas below are the only hand-written part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Route

from emulator.endpoints import OAI_PREFIX

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


def openapi_document(version: str, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or route.path.startswith(OAI_PREFIX + "/"):
            continue
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = {
                "summary": getattr(route, "summary", route.name),
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
