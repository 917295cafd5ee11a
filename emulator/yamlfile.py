"""Reading the emulator's YAML configuration files (models, tenants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from emulator.errors import ConfigError

#: libyaml's safe loader when PyYAML was built with it (its wheels are): the same documents and
#: the same errors, parsed in C, several times faster than the pure-Python loader; the bundled
#: model catalogue is parsed at every start
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, with libyaml when it is there."""
    return yaml.load(text, Loader=SAFE_LOADER)


def read_yaml(path: Path, what: str) -> Any:
    """The document in `path`; a `ConfigError` naming the file when it cannot be read or parsed."""
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
