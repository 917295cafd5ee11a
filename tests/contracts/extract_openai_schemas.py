"""Copy the OpenAI schemas the contract tests use out of OpenAI's OpenAPI document.

Run by hand when the source document changes, never by the tests:

    python tests/contracts/extract_openai_schemas.py path/to/openapi.yaml

It writes `openai-schemas.json` beside itself: the named schemas and every schema they `$ref`,
unchanged but for one rewrite. A few schemas still carry OpenAPI 3.0's `nullable: true`, which
JSON Schema ignores; it becomes `anyOf: [<schema>, {"type": "null"}]`, its meaning.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

WANTED = (
    "Batch", "ListBatchesResponse", "OpenAIFile", "ListFilesResponse", "DeleteFileResponse",
    "Error", "ErrorResponse", "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse", "CreateEmbeddingResponse", "Model", "ListModelsResponse",
)  # fmt: skip
SOURCE = (
    "github.com/openai/openai-openapi, branch main, commit "
    "f85dbe223d40e1a31cba812ab2d755c7e98a92a3, file openapi.yaml"
)


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: nullable(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


def main(path: str) -> None:
    raw = Path(path).read_bytes()
    schemas = yaml.safe_load(raw)["components"]["schemas"]
    picked: dict[str, Any] = {}
    todo = list(WANTED)
    while todo:
        name = todo.pop()
        if name not in picked:
            picked[name] = nullable(schemas[name])
            todo += sorted(refs(schemas[name]))
    out = {
        "source": SOURCE,
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "rewrite": "OpenAPI 3.0 `nullable: true` written as anyOf with null",
        "components": {"schemas": dict(sorted(picked.items()))},
    }
    target = Path(__file__).with_name("openai-schemas.json")
    target.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
