"""The model catalogue: data (a bundled YAML, replaceable with `--models`), checked once on load."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from emulator.errors import ConfigError, ModelNotFound
from emulator.inference.images import MAX_SIDE, STANDARD_SIZES, parse_size
from emulator.records import Model
from emulator.windows import WINDOWS
from emulator.yamlfile import read_yaml

BUNDLED_MODELS = Path(__file__).parent / "data" / "models.yaml"
MODALITIES = ("chat", "embedding", "image", "audio")
STATUSES = ("active", "deprecated")


class Catalogue:
    """The models, in file order, by slug."""

    def __init__(self, models: list[Model]) -> None:
        self.models = models
        self._by_slug = {m.slug: m for m in models}

    def get(self, slug: str) -> Model:
        model = self._by_slug.get(slug)
        if model is None:
            raise ModelNotFound(f"Model '{slug}' not found.")
        return model

    def find(self, slug: str) -> Model | None:
        return self._by_slug.get(slug)

    def list(self, modality: str | None = None, status: str | None = None) -> list[Model]:
        return [
            m
            for m in self.models
            if (modality is None or m.modality == modality)
            and (status is None or m.status == status)
        ]


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file; any problem is a `ConfigError` naming file and model."""
    path = path or BUNDLED_MODELS
    doc = read_yaml(path, "models file")
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list) or not doc["models"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'models' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping")
    models = [
        _model(path, i, {**defaults, **_mapping(path, i, raw)})
        for i, raw in enumerate(doc["models"])
    ]
    slugs = [m.slug for m in models]
    dupes = sorted({s for s in slugs if slugs.count(s) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate model slug(s): {', '.join(dupes)}")
    return Catalogue(models)


_KNOWN = {
    "slug", "display_name", "modality", "status", "context_window", "max_output_tokens",
    "dimensions", "input_price_per_mtok", "output_price_per_mtok", "price_per_image",
    "batch_discount", "health_status", "active_backend_count", "total_backend_count",
    "description", "image_sizes",
}  # fmt: skip


def _mapping(path: Path, i: int, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: models[{i}] must be a mapping")
    return raw


def _model(path: Path, i: int, raw: dict[str, Any]) -> Model:
    where = f"{path}: models[{i}] ({raw.get('slug', '?')})"
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(unknown)}")
    for key in (
        "slug",
        "modality",
        "context_window",
        "input_price_per_mtok",
        "output_price_per_mtok",
    ):
        if key not in raw:
            raise ConfigError(f"{where}: missing required field '{key}'")
    if not isinstance(raw["slug"], str) or not raw["slug"].strip():
        raise ConfigError(f"{where}: slug must be a non-empty string")
    if raw["modality"] not in MODALITIES:
        raise ConfigError(f"{where}: modality must be one of {', '.join(MODALITIES)}")
    if raw.get("status", "active") not in STATUSES:
        raise ConfigError(f"{where}: status must be one of {', '.join(STATUSES)}")
    if raw["modality"] == "embedding" and not _positive_int(raw.get("dimensions")):
        raise ConfigError(f"{where}: an embedding model needs a positive integer 'dimensions'")
    if raw["modality"] == "chat" and not _positive_int(raw.get("max_output_tokens")):
        raise ConfigError(f"{where}: a chat model needs a positive integer 'max_output_tokens'")
    for key in ("max_output_tokens", "dimensions"):
        if raw.get(key) is not None and not _positive_int(raw[key]):
            raise ConfigError(f"{where}: {key} must be a positive integer")
    if not _positive_int(raw["context_window"]) and raw["context_window"] != 0:
        raise ConfigError(f"{where}: context_window must be a non-negative integer")
    given = raw.get("batch_discount") or {}
    if not isinstance(given, dict) or not set(given) <= set(WINDOWS):
        raise ConfigError(f"{where}: batch_discount may give only {', '.join(WINDOWS)}")
    discount = {w.name: str(w.default_discount) for w in WINDOWS.values()} | given
    extra: dict[str, Any] = {
        k: raw[k]
        for k in ("health_status", "active_backend_count", "total_backend_count", "description")
        if k in raw
    }
    return Model(
        slug=str(raw["slug"]),
        display_name=str(raw.get("display_name") or raw["slug"]),
        modality=raw["modality"],
        status=raw.get("status", "active"),
        context_window=raw["context_window"],
        max_output_tokens=raw.get("max_output_tokens"),
        dimensions=raw.get("dimensions"),
        input_price_per_mtok=_decimal(where, "input_price_per_mtok", raw["input_price_per_mtok"]),
        output_price_per_mtok=_decimal(
            where, "output_price_per_mtok", raw["output_price_per_mtok"]
        ),
        price_per_image=(
            _decimal(where, "price_per_image", raw["price_per_image"])
            if raw.get("price_per_image") is not None
            else None
        ),
        batch_discount={w: _fraction(where, w, discount[w]) for w in WINDOWS},
        image_sizes=_image_sizes(where, raw),
        extra=extra,
    )


def _image_sizes(where: str, raw: dict[str, Any]) -> tuple[str, ...]:
    """An image model's sizes: its `image_sizes`, else OpenAI's five; () for other models."""
    given = raw.get("image_sizes")
    if raw["modality"] != "image":
        if given is not None:
            raise ConfigError(f"{where}: image_sizes is for image models only")
        return ()
    if given is None:
        return STANDARD_SIZES
    if (
        not isinstance(given, list)
        or not given
        or not all(isinstance(s, str) and parse_size(s) for s in given)
    ):
        msg = f'a non-empty list of "WxH" sizes, sides 1..{MAX_SIDE} ("1024x1024")'
        raise ConfigError(f"{where}: image_sizes must be {msg}")
    return tuple(dict.fromkeys(given))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _decimal(where: str, key: str, value: Any) -> Decimal:
    # Prices are decimal strings on the wire; floats in YAML would round, so they are refused.
    if not isinstance(value, str):
        raise ConfigError(f'{where}: {key} must be a decimal string such as "2.50"')
    try:
        out = Decimal(value)
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: {key} is not a decimal: {value!r}") from exc
    if not out.is_finite() or out < 0:
        raise ConfigError(f"{where}: {key} must be a non-negative decimal")
    return out


def _fraction(where: str, window: str, value: Any) -> Decimal:
    out = _decimal(where, f"batch_discount.{window}", value)
    if out > 1:
        raise ConfigError(f"{where}: batch_discount.{window} must be between 0 and 1")
    return out
