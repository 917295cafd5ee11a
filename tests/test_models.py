"""The model catalogue: the bundled models, list filters and pages, lookups, replacement files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness

from emulator.cli import main
from emulator.errors import ConfigError
from emulator.inference.catalogue import BUNDLED_MODELS, load_catalogue

MakeEmu = Callable[..., Awaitable[Harness]]

#: Every model the reference names: slug -> the fields it states.
REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    "scailabs/poolnoodle-omni": {
        "modality": "chat",
        "context_window": 256000,
        "max_output_tokens": 32768,
        "display_name": "Poolnoodle Omni",
    },
    "openai/gpt-4o": {"modality": "chat"},
    "openai/text-embedding-3-small": {"modality": "embedding", "dimensions": 1536},
    "openai/text-embedding-3-large": {"modality": "embedding", "dimensions": 3072},
    "openai/text-embedding-ada-002": {"modality": "embedding", "dimensions": 1536},
    "google/text-embedding-004": {"modality": "embedding", "dimensions": 768},
    "mistral/mistral-embed": {"modality": "embedding", "dimensions": 1024},
    "openai/dall-e-3": {"modality": "image"},
    "openai/dall-e-2": {"modality": "image"},
    "stability/sd-xl": {"modality": "image"},
    "openai/whisper-1": {"modality": "audio"},
}


async def all_models(emu: Harness, **params: Any) -> list[dict[str, Any]]:
    resp = await emu.client.get("/v1/models", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["pagination"] == {"has_more": False, "next_cursor": None}
    items: list[dict[str, Any]] = body["data"]["items"]
    return items


# --- the bundled catalogue ----------------------------------------------------------------------


async def test_every_reference_model_is_listed(emu: Harness) -> None:
    by_slug = {m["slug"]: m for m in await all_models(emu)}
    for slug, expected in REFERENCE_MODELS.items():
        assert slug in by_slug, slug
        for field, value in expected.items():
            assert by_slug[slug][field] == value, (slug, field)


async def test_model_fields(emu: Harness) -> None:
    for m in await all_models(emu):
        assert isinstance(m["display_name"], str) and m["display_name"]
        assert m["status"] in ("active", "deprecated")
        assert isinstance(m["context_window"], int) and m["context_window"] >= 0
        if m["modality"] == "chat":
            assert isinstance(m["max_output_tokens"], int) and m["max_output_tokens"] > 0
        if m["modality"] == "embedding":
            assert isinstance(m["dimensions"], int) and m["dimensions"] > 0
        else:
            assert "dimensions" not in m
        # Prices are decimal strings, never floats.
        assert isinstance(m["input_price_per_mtok"], str)
        assert isinstance(m["output_price_per_mtok"], str)
        assert set(m["batch_discount"]) == {"24h", "4h", "1h"}


async def test_reference_example_fields_on_poolnoodle(emu: Harness) -> None:
    resp = await emu.client.get("/v1/models/scailabs%2Fpoolnoodle-omni")
    model = resp.json()["data"]
    # The fields of the reference's example item.
    for field in (
        "slug", "display_name", "modality", "context_window", "max_output_tokens", "status",
        "health_status", "active_backend_count", "total_backend_count",
    ):  # fmt: skip
        assert field in model, field
    assert model["health_status"] == "healthy"


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["chat", "embedding", "image", "audio"])
async def test_modality_filter(emu: Harness, modality: str) -> None:
    items = await all_models(emu, modality=modality)
    assert items
    assert {m["modality"] for m in items} == {modality}
    expected = {s for s, f in REFERENCE_MODELS.items() if f["modality"] == modality}
    assert expected <= {m["slug"] for m in items}


async def test_status_filter(emu: Harness) -> None:
    everything = await all_models(emu)
    active = await all_models(emu, status="active")
    deprecated = await all_models(emu, status="deprecated")
    assert {m["status"] for m in active} == {"active"}
    assert {m["status"] for m in deprecated} == {"deprecated"}
    assert len(active) + len(deprecated) == len(everything)
    both = await all_models(emu, status="active", modality="embedding")
    assert {(m["status"], m["modality"]) for m in both} == {("active", "embedding")}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"modality": "video"}, "modality"),
        ({"modality": ""}, "modality"),
        ({"status": "retired"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
    ],
)
async def test_bad_list_parameters_are_validation_errors(
    emu: Harness, params: dict[str, str], field: str
) -> None:
    resp = await emu.client.get("/v1/models", params=params)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["field"] == field


# --- pagination -------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "params"), [(1, {}), (5, {}), (2, {"modality": "embedding"})])
async def test_pages_cover_the_list_exactly_once(
    emu: Harness, limit: int, params: dict[str, str]
) -> None:
    expected = [m["slug"] for m in await all_models(emu, **params)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(expected) + 2):  # bounded: a cursor loop would fail, not hang
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        body = (await emu.client.get("/v1/models", params=query)).json()
        items = [m["slug"] for m in body["data"]["items"]]
        assert 0 < len(items) <= limit
        seen += items
        cursor = body["pagination"]["next_cursor"]
        assert body["pagination"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert cursor is None
    assert seen == expected


async def test_default_limit_is_20(emu: Harness) -> None:
    body = (await emu.client.get("/v1/models")).json()
    total = len(await all_models(emu))
    assert len(body["data"]["items"]) == min(total, 20)
    assert body["pagination"]["has_more"] is (total > 20)


# --- single model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("/v1/models/openai%2Fgpt-4o", "openai/gpt-4o"),
        ("/v1/models/tenant%2Facme%2Fsummarizer", "tenant/acme/summarizer"),
        ("/v1/models/openai%2ftext-embedding-3-large", "openai/text-embedding-3-large"),
        ("/v1/models/openai/gpt-4o", "openai/gpt-4o"),  # literal slashes are served too
    ],
)
async def test_get_model_by_encoded_slug(emu: Harness, path: str, slug: str) -> None:
    resp = await emu.client.get(path)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    assert body["data"]["slug"] == slug
    listed = {m["slug"]: m for m in await all_models(emu)}
    assert body["data"] == listed[slug]


@pytest.mark.parametrize(
    "path", ["/v1/models/openai%2Fgpt-5", "/v1/models/gpt-4o", "/v1/models/openai%2F"]
)
async def test_unknown_slug_is_model_not_found(emu: Harness, path: str) -> None:
    resp = await emu.client.get(path)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "MODEL_NOT_FOUND"


# --- replacement catalogue ----------------------------------------------------------------------

REPLACEMENT = """
models:
  - slug: acme/tiny-chat
    display_name: Tiny Chat
    modality: chat
    context_window: 4096
    max_output_tokens: 256
    input_price_per_mtok: "0.10"
    output_price_per_mtok: "0.20"
  - slug: acme/tiny-embed
    modality: embedding
    context_window: 512
    dimensions: 8
    status: deprecated
    input_price_per_mtok: "0.01"
    output_price_per_mtok: "0"
    batch_discount: {"24h": "0.40"}
"""


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_models_file_replaces_the_catalogue(tmp_path: Path, make_emu: MakeEmu) -> None:
    emu = await make_emu(models=write(tmp_path, REPLACEMENT))
    items = await all_models(emu)
    assert [m["slug"] for m in items] == ["acme/tiny-chat", "acme/tiny-embed"]
    chat, embed = items
    assert chat["display_name"] == "Tiny Chat"
    assert embed["display_name"] == "acme/tiny-embed"  # the slug when no name is given
    assert embed["dimensions"] == 8 and embed["status"] == "deprecated"
    # Windows a model does not set take the documented default discounts.
    assert chat["batch_discount"] == {"24h": "0.50", "4h": "0.30", "1h": "0.15"}
    assert embed["batch_discount"] == {"24h": "0.40", "4h": "0.30", "1h": "0.15"}
    resp = await emu.client.get("/v1/models/openai%2Fgpt-4o")
    assert resp.json()["error"]["code"] == "MODEL_NOT_FOUND"
    # Inference uses the replacement catalogue too.
    resp = await emu.client.post(
        "/v1/inference/embed", json={"model": "acme/tiny-embed", "input": "hello"}
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"]["data"][0]["embedding"]) == 8


def test_bundled_catalogue_loads() -> None:
    catalogue = load_catalogue()
    assert catalogue.models == load_catalogue(BUNDLED_MODELS).models
    assert set(REFERENCE_MODELS) <= {m.slug for m in catalogue.models}


CHAT_MODEL = """  - slug: a/chat
    modality: chat
    context_window: 100
    max_output_tokens: 10
    input_price_per_mtok: "1"
    output_price_per_mtok: "1"
"""

BAD_MODEL_FILES = {
    "unknown-modality": (
        CHAT_MODEL.replace("modality: chat", "modality: video"),
        "models[0] (a/chat): modality must be one of chat, embedding, image, audio",
    ),
    "float-price": (
        CHAT_MODEL.replace('input_price_per_mtok: "1"', "input_price_per_mtok: 2.5"),
        "models[0] (a/chat): input_price_per_mtok must be a decimal string",
    ),
    "bad-decimal": (
        CHAT_MODEL.replace('output_price_per_mtok: "1"', 'output_price_per_mtok: "cheap"'),
        "output_price_per_mtok is not a decimal",
    ),
    "embedding-without-dimensions": (
        CHAT_MODEL.replace("modality: chat", "modality: embedding"),
        "models[0] (a/chat): an embedding model needs a positive integer 'dimensions'",
    ),
    "duplicate-slug": (CHAT_MODEL + CHAT_MODEL, "duplicate model slug(s): a/chat"),
    "missing-field": (
        CHAT_MODEL.replace("    context_window: 100\n", ""),
        "models[0] (a/chat): missing required field 'context_window'",
    ),
    "unknown-field": (CHAT_MODEL + "    colour: blue\n", "unknown field(s): colour"),
    "bool-context-window": (
        CHAT_MODEL.replace("context_window: 100", "context_window: yes"),
        "context_window must be a non-negative integer",
    ),
    "non-string-slug": (CHAT_MODEL.replace("slug: a/chat", "slug: 5"), "slug must be a non-empty"),
    "bad-discount-window": (
        CHAT_MODEL + '    batch_discount: {"2h": "0.1"}\n',
        "batch_discount may give only 24h, 4h, 1h",
    ),
    "discount-over-one": (
        CHAT_MODEL + '    batch_discount: {"24h": "1.5"}\n',
        "batch_discount.24h must be between 0 and 1",
    ),
    "image-sizes-on-a-chat-model": (
        CHAT_MODEL + '    image_sizes: ["1024x1024"]\n',
        "models[0] (a/chat): image_sizes is for image models only",
    ),
    "bad-image-size": (
        CHAT_MODEL.replace("modality: chat", "modality: image") + '    image_sizes: ["big"]\n',
        'image_sizes must be a non-empty list of "WxH" sizes, sides 1..4096',
    ),
    "image-size-too-large": (
        CHAT_MODEL.replace("modality: chat", "modality: image") + '    image_sizes: ["8192x8"]\n',
        'image_sizes must be a non-empty list of "WxH" sizes',
    ),
}


@pytest.mark.parametrize(("body", "expected"), BAD_MODEL_FILES.values(), ids=BAD_MODEL_FILES)
def test_bad_models_file_is_a_config_error(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, "models:\n" + body)
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [\n", "not valid YAML"),
        ("models: []\n", "expected a mapping with a non-empty 'models' list"),
        ("- a\n", "expected a mapping with a non-empty 'models' list"),
        ("models:\n  - just-a-string\n", "models[0] must be a mapping"),
        ("defaults: 5\nmodels:\n" + CHAT_MODEL, "'defaults' must be a mapping"),
    ],
    ids=["not-yaml", "empty-list", "list-document", "entry-not-a-mapping", "bad-defaults"],
)
def test_malformed_models_file_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_missing_models_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: cannot read models file")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n" + BAD_MODEL_FILES["float-price"][0], "must be a decimal string"),
        ("models: [\n", "not valid YAML"),
        (None, "cannot read models file"),
    ],
    ids=["float-price", "not-yaml", "missing"],
)
def test_serve_with_bad_models_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, expected: str
) -> None:
    path = write(tmp_path, text) if text is not None else tmp_path / "absent.yaml"
    argv = ["serve", "--models", str(path), "--port", "0", "--db", ":memory:"]
    assert main(argv, env={}) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaigrid-emulator: error: "), err
    assert str(path) in err and expected in err
