"""The inference endpoints: each path, the modality of model it serves, and what it carries.

The live routes, the batch parser's list of batchable URLs, the engine's dispatch and the
catalogue's modality check all read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    #: the modality a model must have to serve it
    modality: str
    summary: str
    #: whether its answers carry expiring links, which point where the client reached us
    links: bool = False
    #: whether a live answer may be remembered: a pure function of the body but for `created`
    memo: bool = False


CHAT = "/v1/inference/chat"
GENERATE = "/v1/inference/generate"
EMBED = "/v1/inference/embed"
IMAGES = "/v1/inference/images/generate"

ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in (
        Endpoint(CHAT, "chat", "Chat completion (stream: true for SSE)", memo=True),
        Endpoint(GENERATE, "chat", "Text completion", memo=True),
        Endpoint(EMBED, "embedding", "Embeddings"),
        Endpoint(IMAGES, "image", "Image generation", links=True),
    )
}
#: every inference endpoint may appear in a batch, mixed freely
BATCHABLE = frozenset(ENDPOINTS)

#: where the OpenAI-compatible surface is mounted: `/oai/v1/...`
OAI_PREFIX = "/oai"

#: OpenAI's path of each inference endpoint (a batch line's `url` and a batch's `endpoint`); a
#: line may name either path, so a file is usable from both surfaces
OPENAI_PATHS: dict[str, str] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": GENERATE,
    "/v1/embeddings": EMBED,
    "/v1/images/generations": IMAGES,
}


def route_of(url: object) -> str | None:
    """The inference route a batch line's `url` names (native or OpenAI path), or None."""
    if not isinstance(url, str):
        return None
    return url if url in ENDPOINTS else OPENAI_PATHS.get(url)
