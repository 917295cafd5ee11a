"""The OpenAPI 3.1 document of every route, built from the route table and the declarations its
rows carry.

Each `Op` row in `emulator.api.routes` has a `Doc`: its query parameters (the same `Param`s the
handler's checks use), its request body (the schema declared beside the checks that enforce it)
and its answer (the schema declared beside the wire function that builds it). Paths, path
parameters and summaries come from the rows themselves, so nothing here can drift from what is
served; `tests/test_openapi.py` checks real answers against the document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Route

from emulator import wire, wire_oai
from emulator.endpoints import CHAT
from emulator.inference import shapes
from emulator.inference.checks import BODIES
from emulator.schema import TEXT, Param, Schema

JSON_TYPE = "application/json"
#: the security requirements an operation may have
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
#: the control plane: open, unless the server has an admin token (header or bearer)
ADMIN: list[dict[str, list[str]]] = [{}, {"adminToken": []}, {"bearer": []}]
OPEN: list[dict[str, list[str]]] = []


@dataclass(frozen=True, slots=True)
class Doc:
    """What an operation takes and answers, beyond its path and summary."""

    #: media type -> schema of the 200 answer
    answer: Mapping[str, Schema]
    query: tuple[Param, ...] = ()
    #: media type -> schema of the request body; None: no body
    body: Mapping[str, Schema] | None = None
    body_required: bool = True
    #: the schema of every other answer (an error)
    errors: Schema = field(default_factory=lambda: wire.ERROR)
    security: list[dict[str, list[str]]] = field(default_factory=lambda: BEARER)


# --- the declarations route rows use ----------------------------------------------------------


def native(data: Schema, query: Sequence[Param] = (), body: Schema | None = None) -> Doc:
    """A native route answering `data` in the envelope, with a JSON body if `body`."""
    return Doc({JSON_TYPE: wire.ok_of(data)}, tuple(query), _json(body))


def paged(item: Schema, query: Sequence[Param]) -> Doc:
    """A native list of `item`s, a page at a time."""
    return Doc({JSON_TYPE: wire.page_of(item)}, tuple(query))


def upload(data: Schema, form: Schema, errors: Schema = wire.ERROR) -> Doc:
    """A multipart upload answering `data` (as is, for the OpenAI surface's `errors`)."""
    answer = wire.ok_of(data) if errors is wire.ERROR else data
    return Doc({JSON_TYPE: answer}, body={"multipart/form-data": form}, errors=errors)


def oai(answer: Schema, query: Sequence[Param] = (), body: Schema | None = None) -> Doc:
    """An OpenAI-surface route: no envelope, OpenAI's error body."""
    return Doc({JSON_TYPE: answer}, tuple(query), _json(body), errors=wire_oai.ERROR)


def inference(native_route: str) -> Doc:
    """A native inference route: its body and its answer (chat may stream)."""
    answer: dict[str, Schema] = {JSON_TYPE: wire.ok_of(shapes.ANSWERS[native_route])}
    if native_route == CHAT:
        answer["text/event-stream"] = shapes.SSE
    return Doc(answer, body=_json(BODIES[native_route]))


def oai_inference(native_route: str, answer: Schema) -> Doc:
    answers: dict[str, Schema] = {JSON_TYPE: answer}
    if native_route == CHAT:
        answers["text/event-stream"] = shapes.SSE
    return Doc(answers, body=_json(BODIES[native_route]), errors=wire_oai.ERROR)


def download(
    media: str,
    query: Sequence[Param] = (),
    errors: Schema = wire.ERROR,
    security: list[dict[str, list[str]]] = BEARER,
) -> Doc:
    """A route whose answer is content, not JSON (results, a file, an image)."""
    return Doc({media: TEXT}, tuple(query), errors=errors, security=security)


def control(
    data: Schema,
    query: Sequence[Param] = (),
    body: Schema | None = None,
    body_required: bool = True,
) -> Doc:
    """A control-plane route: the envelope, and the admin token when the server has one."""
    return Doc(
        {JSON_TYPE: wire.ok_of(data)}, tuple(query), _json(body), body_required, security=ADMIN
    )


def _json(body: Schema | None) -> dict[str, Schema] | None:
    return None if body is None else {JSON_TYPE: body}


# --- the document ----------------------------------------------------------------------------


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]


def _content(media: Mapping[str, Schema]) -> dict[str, Any]:
    return {kind: {"schema": schema} for kind, schema in media.items()}


def operation(route: Route, method: str, doc: Doc, path: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": getattr(route, "summary", route.name),
        # from the path, not the handler's name: both surfaces have a `list_models`
        "operationId": method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_"),
        "parameters": _path_params(path) + [p.openapi() for p in doc.query],
        "responses": {
            "200": {"description": "OK", "content": _content(doc.answer)},
            "default": {
                "description": "Error",
                "content": {JSON_TYPE: {"schema": doc.errors}},
            },
        },
        "security": doc.security,
    }
    if doc.body is not None:
        op["requestBody"] = {"required": doc.body_required, "content": _content(doc.body)}
    return op


def template(path: str) -> str:
    """The OpenAPI path of a route path: `{slug:path}` becomes `{slug}`."""
    return re.sub(r"{(\w+):\w+}", r"{\1}", path)


def openapi_document(version: str, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        doc = getattr(route, "doc", None)
        if not isinstance(route, Route) or doc is None:
            continue
        path = template(route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = operation(route, method, doc, path)
    schemas: dict[str, Schema] = {}
    for components in (wire.COMPONENTS, wire_oai.COMPONENTS, shapes.COMPONENTS):
        clash = set(schemas) & set(components.schemas)
        assert not clash, f"schemas declared twice: {clash}"
        schemas.update(components.schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scaigrid-emulator",
            "version": version,
            "description": "ScaiGrid's Batch Inference API (native, `/v1`), its "
            "OpenAI-compatible surface (`/oai/v1`) and the emulator's control plane.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "sgk_ API key"},
                "adminToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Emulator-Admin-Token",
                    "description": "the server's --admin-token, when it has one",
                },
            },
        },
        "security": BEARER,
    }
