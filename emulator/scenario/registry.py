"""The scenarios in force, and where scenarios come from.

Scopes, most specific first: the batch's `X-Emulator-Scenario` header on submit, the tenant's
scenario (control API), the global scenario (`serve --scenario`). Bundled scenarios are found by
name in the installed package or in the repository's `scenarios/` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from emulator.errors import ValidationError
from emulator.records import BatchRecord
from emulator.scenario.model import Scenario, parse_scenario
from emulator.scenario.plan import HAPPY_PATH, Plan
from emulator.scenario.schema import ScenarioError

_PACKAGE = Path(__file__).parent.parent  # emulator/
#: bundled scenarios: in the installed package, or the repository's scenarios/ folder.
BUNDLED_DIRS = (_PACKAGE / "_scenarios", _PACKAGE.parent / "scenarios")


#: the start of a YAML mapping on one line (`name: x`, `faults: [...]`): never a scenario's name,
#: nor a file path (`C:\\x.yaml` has no space after its colon)
_YAML_KEY = re.compile(r"\s*[A-Za-z_][\w-]*\s*:(\s|$)")


def looks_like_yaml(ref: str) -> bool:
    """Whether a reference given where a scenario's name is expected is inline YAML: several
    lines, a flow mapping (`{faults: [...]}`), or a one-line `key: value`."""
    return "\n" in ref or ref.lstrip().startswith("{") or bool(_YAML_KEY.match(ref))


def bundled_files() -> dict[str, Path]:
    for folder in BUNDLED_DIRS:
        if folder.is_dir():
            return {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    return {}


def read_scenario_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror}") from None


def load_scenario_file(path: Path) -> Scenario:
    return parse_scenario(read_scenario_file(path), str(path), fallback_name=path.stem)


def _refused(exc: ScenarioError, field: str) -> ValidationError:
    """A 422 for a scenario the language refuses: every problem, each its own detail."""
    return ValidationError(
        "; ".join(exc.problems), details=[{"field": field, "message": p} for p in exc.problems]
    )


class Scenarios:
    """The scenarios in force: global, per tenant; and the lookup of a batch's scenario.

    It holds the emulator's seed, which every plan it makes draws from (unless a scenario pins
    its own)."""

    def __init__(self, global_ref: str, seed: int = 0) -> None:
        self.seed = seed
        self._bundled = bundled_files()
        self._cache: dict[str, Scenario] = {}  # bundled scenarios by name
        self._files: dict[tuple[str, str], Scenario] = {}  # scenario files by (path, text)
        self.global_scenario = self.resolve(global_ref, strict=True)
        self._tenants: dict[str, Scenario] = {}
        # scope (None: global) -> the number of the setting that put its scenario in force, so
        # that counts kept for a scenario (API-fault calls) start afresh when it is set again
        self._activations: dict[str | None, int] = {None: 0}
        self._set_count = 0
        self.gated = False
        self._refresh()

    def _refresh(self) -> None:
        """`gated`: whether any scenario in force has API faults or a rate limit (the gate's
        one check on the hot path)."""
        self.gated = any(
            s.api_faults or s.rate_limit for s in (self.global_scenario, *self._tenants.values())
        )

    def resolve(self, ref: str, *, strict: bool = False) -> Scenario:
        """A bundled name, a YAML file path, or inline YAML text. `strict` raises ScenarioError
        (startup); otherwise an unknown or invalid scenario is a 422 for the request that named
        it."""
        try:
            if looks_like_yaml(ref):
                if ref not in self._cache:
                    self._cache[ref] = parse_scenario(ref, "<inline>")
                return self._cache[ref]
            if ref in self._bundled:
                if ref not in self._cache:
                    self._cache[ref] = load_scenario_file(self._bundled[ref])
                return self._cache[ref]
            if ref.endswith((".yaml", ".yml")) and Path(ref).is_file():
                # read each time it is named, so an edited file takes effect when set again
                text = read_scenario_file(Path(ref))
                if (ref, text) not in self._files:
                    self._files[(ref, text)] = parse_scenario(text, ref, Path(ref).stem)
                return self._files[(ref, text)]
            known = ", ".join(self._bundled)
            raise ScenarioError(f"unknown scenario '{ref}' (bundled: {known}; or a .yaml file)")
        except ScenarioError as exc:
            if strict:
                raise
            raise _refused(exc, "scenario") from None

    def reseed(self, seed: int) -> None:
        self.seed = seed

    def plan(self, scenario: Scenario, key: str) -> Plan:
        """The plan `scenario` gives the batch (or live call) named `key`."""
        return scenario.plan(self.seed, key)

    def plan_for(self, batch: BatchRecord) -> Plan:
        """The plan a batch follows: its scenario, as captured when it was submitted."""
        text = batch.extra.get("scenario")
        if text is None:
            return HAPPY_PATH
        return self.plan(self.from_yaml(text), batch.id)

    def from_yaml(self, text: str) -> Scenario:
        if text not in self._cache:
            try:
                self._cache[text] = parse_scenario(text, "<inline>")
            except ScenarioError as exc:
                raise _refused(exc, "yaml") from None
        return self._cache[text]

    def set_global(self, scenario: Scenario) -> None:
        self.global_scenario = scenario
        self._activate(None)

    def set_tenant(self, tenant_id: str, scenario: Scenario | None) -> None:
        if scenario is None:
            self._tenants.pop(tenant_id, None)
            self._activations.pop(tenant_id, None)
        else:
            self._tenants[tenant_id] = scenario
            self._activate(tenant_id)
        self._refresh()

    def _activate(self, scope: str | None) -> None:
        self._set_count += 1
        self._activations[scope] = self._set_count
        self._refresh()

    def activation(self, tenant_id: str | None) -> int:
        """Which setting put the tenant's scenario in force (changes each time one is set)."""
        if tenant_id is not None and tenant_id in self._tenants:
            return self._activations[tenant_id]
        return self._activations[None]

    def for_tenant(self, tenant_id: str | None) -> Scenario:
        if tenant_id is not None and tenant_id in self._tenants:
            return self._tenants[tenant_id]
        return self.global_scenario

    def restore(
        self, global_: tuple[str, str, str] | None, tenants: dict[str, tuple[str, str, str]]
    ) -> None:
        """Put back the scenarios a previous run set, each as (name, source, YAML text)."""
        if global_ is not None:
            self.set_global(parse_scenario(global_[2], global_[1], global_[0]))
        for tenant_id, (name, source, text) in tenants.items():
            self.set_tenant(tenant_id, parse_scenario(text, source, name))

    def tenant_scenarios(self) -> dict[str, Scenario]:
        return dict(self._tenants)

    def bundled(self) -> list[Scenario]:
        return [self.resolve(name) for name in self._bundled]

    def reset(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._tenants.clear()
            self._activations = {None: self._activations[None]}
        else:
            self._tenants.pop(tenant_id, None)
            self._activations.pop(tenant_id, None)
        self._refresh()
