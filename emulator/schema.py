"""The vocabulary wire shapes are declared in: JSON Schema (2020-12, the dialect of OpenAPI 3.1)
in a few builders, named components, and `Param`, a query or path parameter.

A shape's schema sits beside the function that builds it (`emulator.wire`, `emulator.wire_oai`),
and a request body's beside the checks that enforce it; `emulator.api.openapi` assembles the
document from them and the route table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

COMPONENTS_REF = "#/components/schemas/"


def obj(
    required: Mapping[str, Schema],
    optional: Mapping[str, Schema] | None = None,
    *,
    extra: bool = False,
    description: str | None = None,
) -> Schema:
    """An object with these properties; `extra`: other properties may appear too."""
    out: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        out["required"] = list(required)
    if not extra:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def string(description: str | None = None, **kw: Any) -> Schema:
    return _with({"type": "string", **kw}, description)


def instant(description: str | None = None) -> Schema:
    """An ISO-8601 UTC instant (the native surface's timestamps)."""
    return string(description, format="date-time")


def integer(minimum: int | None = None, maximum: int | None = None, **kw: Any) -> Schema:
    return _bounded({"type": "integer", **kw}, minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None, **kw: Any) -> Schema:
    return _bounded({"type": "number", **kw}, minimum, maximum)


def boolean(**kw: Any) -> Schema:
    return {"type": "boolean", **kw}


def const(value: Any) -> Schema:
    return {"const": value}


def enum(values: Iterable[str], description: str | None = None) -> Schema:
    return _with({"type": "string", "enum": list(values)}, description)


def array(items: Schema, **kw: Any) -> Schema:
    return {"type": "array", "items": items, **kw}


def mapping(values: Schema, **kw: Any) -> Schema:
    """An object whose keys are free and whose values all have one schema."""
    return {"type": "object", "additionalProperties": values, **kw}


def nullable(schema: Schema) -> Schema:
    """`schema` or null. A plain typed schema gets `null` added to its type (what generators
    read best); anything else (a reference, a union) becomes a union with null."""
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        values = schema.get("enum")
        out = {**schema, "type": [kind, "null"]}
        if values is not None:
            out["enum"] = [*values, None]
        return out
    return {"anyOf": [schema, {"type": "null"}]}


def one_of(*schemas: Schema) -> Schema:
    return {"oneOf": list(schemas)}


ANY: Schema = {}
#: free text, as a response body that is not JSON (results, file content, an SSE stream)
TEXT: Schema = {"type": "string"}
BINARY: Schema = {"type": "string", "contentMediaType": "application/octet-stream"}


def _with(schema: Schema, description: str | None) -> Schema:
    if description:
        schema["description"] = description
    return schema


def _bounded(schema: Schema, minimum: float | None, maximum: float | None) -> Schema:
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


class Components:
    """The named schemas a wire module declares; `add` answers the reference to use."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> Schema:
        if name in self.schemas:
            raise ValueError(f"schema {name} is declared twice")
        self.schemas[name] = schema
        return ref(name)


def ref(name: str) -> Schema:
    return {"$ref": COMPONENTS_REF + name}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter a route reads: its name, its schema and what it means. The description
    doubles as the `expected` wording of the 422 a bad value gets, where a handler says so."""

    name: str
    schema: Schema
    description: str
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": self.schema,
        }
