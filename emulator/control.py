"""Control-plane operations: what `/_emulator/...` does to the whole emulator, without the HTTP."""

from __future__ import annotations

from typing import Any

from emulator import wire
from emulator.clock import parse_instant
from emulator.core import Emulator
from emulator.errors import EmulatorError, ValidationError
from emulator.scenario.model import Scenario
from emulator.tenancy import KEY_PATTERN


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {field}: {message}.", details=[{"field": field, "message": message}]
    )


def tenant_of(core: Emulator, body: dict[str, Any]) -> str | None:
    """`tenant_id`, or the tenant an `api_key` belongs to; None means everyone."""
    if body.get("tenant_id") is not None:
        if not isinstance(body["tenant_id"], str):
            raise _field_error("tenant_id", "must be a string")
        return str(body["tenant_id"])
    key = body.get("api_key")
    if key is None:
        return None
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise _field_error("api_key", "must be a well-formed sgk_ key")
    try:
        return core.tenancy.authenticate(f"Bearer {key}").tenant_id
    except EmulatorError:
        raise _field_error("api_key", "is not a key of any tenant") from None


async def reset(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    tenant = tenant_of(core, body)
    await forget(core, tenant)
    return {"reset": "all" if tenant is None else tenant}


async def forget(core: Emulator, tenant_id: str | None = None) -> None:
    """Forget everything, or one tenant's batches, files, scenario, journal and counts."""
    async with core.worker.lock:
        await core.store.reset(tenant_id)
        await core.store.reset_webhooks(tenant_id)
        core.worker.forget()
        core.sender.forget()
    core.journal.clear(tenant_id)
    core.scenarios.reset(tenant_id)
    core.effects.reset(tenant_id)
    core.live.reset(tenant_id)
    if tenant_id is None:
        core.sinks.reset()
        core.files.reset_sequence()
        core.batches.reset_sequence()
        core.webhooks.reset_sequence()
        core.events.reset_sequence()
        core.ids.reset()


def reseed(core: Emulator, seed: int) -> None:
    """Change the seed behind ids, fake inference and every random choice."""
    core.settings = core.settings.replace(seed=seed)
    for seeded in (core.ids, core.signer, core.scenarios, core.live):
        seeded.reseed(seed)


async def settle(core: Emulator) -> None:
    """Process everything due on the emulator clock now (tests and clock moves use this): the
    batches, then the webhook deliveries due, those of batches that just finished included."""
    await core.worker.run_due()
    await core.sender.run_due()


def health(core: Emulator) -> dict[str, Any]:
    return {"status": "healthy" if core.started else "starting", "version": core.version}


async def set_clock(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    mode, scale, start = body.get("mode"), body.get("scale"), body.get("start")
    if mode is not None and not isinstance(mode, str):
        raise _field_error("mode", "must be real, scaled or frozen")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)):
        raise _field_error("scale", "must be a number > 0")
    instant = None
    if start is not None:
        try:
            instant = parse_instant(str(start))
        except ValueError:
            raise _field_error("start", "must be an ISO-8601 instant") from None
    core.clock.configure(mode, float(scale) if scale is not None else None, instant)
    await settle(core)
    return core.clock.to_dict()


async def advance_clock(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    """Move the clock forward, then process everything that became due before answering, so a
    status read right after sees exactly the state at the new instant."""
    seconds = 0.0
    for name, unit in (("seconds", 1), ("minutes", 60), ("hours", 3600)):
        value = body.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _field_error(name, "must be a number")
        seconds += unit * value
    core.clock.advance(seconds)
    await settle(core)
    return core.clock.to_dict()


def set_seed(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    seed = body.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise _field_error("seed", "must be an integer")
    reseed(core, seed)
    return {"seed": seed}


def scenario_from(core: Emulator, body: dict[str, Any]) -> Scenario:
    """`{"name": bundled-name-or-file}` or `{"yaml": "..."}`."""
    if isinstance(body.get("yaml"), str):
        return core.scenarios.from_yaml(body["yaml"])
    if isinstance(body.get("name"), str):
        return core.scenarios.resolve(body["name"])
    raise ValidationError(
        'Give a scenario as {"name": ...} or {"yaml": ...}.',
        details=[{"field": "name", "message": "a bundled name, a file path, or inline yaml"}],
    )


def describe(scenario: Scenario) -> dict[str, Any]:
    return {**scenario.summary(), "yaml": scenario.text}


def list_scenarios(core: Emulator) -> dict[str, Any]:
    scenarios = core.scenarios
    return {
        "bundled": [s.summary() for s in scenarios.bundled()],
        "global": scenarios.global_scenario.summary(),
        "tenants": {t: s.summary() for t, s in scenarios.tenant_scenarios().items()},
    }


async def state(core: Emulator, tenant_id: str | None, base_url: str) -> dict[str, Any]:
    """A dump of the emulator's state (what the dashboard shows)."""
    batches = await core.store.all_batches(tenant_id)
    files = await core.store.all_files(tenant_id)
    return {
        "version": core.version,
        "clock": core.clock.to_dict(),
        "seed": core.settings.seed,
        "tenancy": core.tenancy.mode,
        "settings": _current_settings(core),
        "scenarios": list_scenarios(core),
        "batches": [
            {"tenant_id": b.tenant_id, **core.batches.to_wire(b, base_url)} for b in batches
        ],
        "files": [{"tenant_id": f.tenant_id, **wire.file(f)} for f in files],
        "webhooks": [  # wire.webhook never shows a secret
            {"tenant_id": w.tenant_id, **wire.webhook(w)}
            for w in await core.store.all_webhooks(tenant_id)
        ],
        "sinks": core.sinks.summary(),
        "journal_size": len(core.journal.raw()),
    }


def _current_settings(core: Emulator) -> dict[str, Any]:
    hidden = {"admin_token"}
    return {
        name: (None if value is None else "***" if name in hidden else str(value))
        for name, value in vars(core.settings).items()
    }
