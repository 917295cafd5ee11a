"""Reading the emulator's YAML configuration files (models, tenants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emulator.errors import ConfigError


def read_yaml(path: Path, what: str) -> Any:
    """The document in `path`; a `ConfigError` naming the file when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
