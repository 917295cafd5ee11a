"""The package's shape: rooms that import only downward, and no import cycle anywhere.

Every import counts, including those under `if TYPE_CHECKING:` and inside functions: a cycle
hidden there is still a cycle in the design. ARCHITECTURE.md describes the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emulator"

#: lowest first; a module may import its own layer and the layers below it, never one above
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "emulator", "emulator.errors", "emulator.records", "emulator.status",
            "emulator.windows", "emulator.endpoints", "emulator.seeded", "emulator.settings",
            "emulator.clock", "emulator.ids", "emulator.signing", "emulator.store",
            "emulator.store.schema", "emulator.store.base", "emulator.store.files",
            "emulator.store.batches", "emulator.store.webhooks", "emulator.store.state",
            "emulator.wire", "emulator.wire_oai", "emulator.wire_control", "emulator.journal",
            "emulator.tenancy", "emulator.durable", "emulator.verdict",
            "emulator.yamlfile", "emulator.schema", "emulator.metrics",
        ),
    ),
    ("scenario", ("emulator.scenario",)),
    ("upstream", ("emulator.upstream",)),
    ("inference", ("emulator.inference",)),
    ("batch", ("emulator.batch",)),
    ("webhooks", ("emulator.webhooks",)),
    ("core", ("emulator.core", "emulator.control")),
    ("api", ("emulator.api",)),
    (
        "doors",
        (
            "emulator.cli",
            "emulator.client",
            "emulator.pytest_plugin",
            "emulator.plugin",
            "emulator.__main__",
            "emulator.conformance",
        ),
    ),
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "emulator" and module.startswith(prefix + ".")):
                return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and ARCHITECTURE.md")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The emulator modules `module` imports, wherever the import statement stands."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "emulator"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "emulator":
                continue
            for alias in node.names:  # `from emulator import wire` imports a module
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in graph().items()
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from emulator.batch.worker import Worker", {"emulator.batch.worker"}),
        ("from emulator import wire", {"emulator.wire"}),
        ("def f():\n    from emulator.api import app", {"emulator.api.app"}),
        ("if TYPE_CHECKING:\n    import emulator.core", {"emulator.core"}),
        ("from .service import Batches", {"emulator.batch.service"}),
        ("from ..store import Store", {"emulator.store"}),
    ],
)
def test_the_walker_sees_every_kind_of_import(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    path = tmp_path / "worker.py"
    path.write_text(source)
    assert imports_of("emulator.batch.worker2", path, set(modules())) == expected


def test_architecture_md_names_every_layer() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for name, prefixes in LAYERS:
        assert name in text
        for prefix in prefixes:
            shown = prefix.replace("emulator.", "").replace(".", "/")
            assert prefix == "emulator" or shown in text, f"ARCHITECTURE.md does not name {shown}"
