"""Control-plane operations: what `/_emulator/...` does to the whole emulator, without the HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator import verdict, wire, wire_control
from emulator.clock import parse_instant
from emulator.core import GLOBAL_SCENARIO, Emulator
from emulator.errors import ClockInUse, ValidationError
from emulator.scenario.model import Scenario
from emulator.settings import SECRET_SETTINGS


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {field}: {message}.", details=[{"field": field, "message": message}]
    )


def tenants_of(core: Emulator, body: dict[str, Any]) -> list[str] | None:
    """The tenants a reset body names: `tenant_id`, the tenant an `api_key` belongs to, or the
    `tenant_ids`; None (no such key) means everyone. The body is checked against its table
    first by the caller: a misspelled key is a 422, never "everyone"."""
    if "tenant_id" in body:
        return [str(body["tenant_id"])]
    if "api_key" in body:
        return [core.tenancy.principal_of(str(body["api_key"])).tenant_id]
    if "tenant_ids" in body:
        named = body["tenant_ids"]
        if not all(isinstance(t, str) for t in named):
            raise _field_error("tenant_ids", "must be an array of tenant id strings")
        return list(dict.fromkeys(named))
    return None


def tenant_path(core: Emulator, key_or_id: str) -> str:
    """The tenant a control path names: a tenant id, or an API key resolved to its tenant."""
    return core.tenancy.resolve(key_or_id)[0]


def tenant_info(core: Emulator, key_or_id: str) -> dict[str, Any]:
    """What `GET /_emulator/tenants/{key_or_id}` answers: the tenant a key or id names."""
    tenant, principal = core.tenancy.resolve(key_or_id)
    if principal is None:
        if core.tenancy.mode == "configured" and tenant not in core.tenancy.tenants():
            raise _field_error("tenant", f"'{tenant}' is not a configured tenant")
        return {"tenant_id": tenant, "partner_id": core.tenancy.partner_of(tenant),
                "resolved_from": "tenant_id"}  # fmt: skip
    return {
        "tenant_id": tenant, "partner_id": principal.partner_id, "resolved_from": "api_key",
        "key_id": principal.key_id, "role": principal.role, "user_id": principal.user_id,
    }  # fmt: skip


async def reset(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    """Forget everyone, or the tenants the body names; with `clock`, then freeze the clock at
    that instant (earlier than now too), as if the server had just started there."""
    body = wire_control.control_body("reset", body)
    tenants = tenants_of(core, body)
    instant = _instant("clock", body["clock"]).timestamp() if "clock" in body else None
    if instant is not None and tenants is not None:
        await _check_nothing_else_waits(core, tenants, body["clock"])
    for tenant in [None] if tenants is None else tenants:
        await forget(core, tenant)
    answer: dict[str, Any] = {"reset": "all"}
    if tenants is not None:
        answer["reset"] = tenants if "tenant_ids" in body else tenants[0]
    if instant is not None:
        if not core.clock.frozen or core.clock.now() != instant:
            core.clock.freeze_at(instant)
            await core.durable.save()
        core.ids.reset()  # request ids too start where a fresh server's do
        answer["clock"] = core.clock.to_dict()
    return answer


async def _check_nothing_else_waits(core: Emulator, tenants: list[str], instant: str) -> None:
    """Moving the clock under another tenant's batches or webhook deliveries would run them at
    the wrong time (or never): refuse while any has work in progress."""
    others = {t: w for t, w in (await core.store.work_in_progress()).items() if t not in tenants}
    if not others:
        return
    listed = ", ".join(
        f"{t} ({batches} batch(es) pending or processing, {deliveries} webhook delivery(ies) "
        "to attempt)"
        for t, (batches, deliveries) in sorted(others.items())
    )
    raise ClockInUse(
        f"Cannot put the clock at {instant}: other tenants have work in progress that would run "
        f"at the wrong time: {listed}. Reset them too, or let their work finish first.",
        details=[{"field": "clock", "message": f"tenant {t} has work in progress"} for t in others],
    )


async def forget(core: Emulator, tenant_id: str | None = None) -> None:
    """Forget everything, or one tenant's batches, files, scenario, journal and counts."""
    if tenant_id is None or core.journal.saved_any(tenant_id) or await core.store.holds(tenant_id):
        async with core.worker.lock:
            await core.store.reset(tenant_id)
            await core.store.reset_webhooks(tenant_id)
            core.worker.forget()
            core.sender.forget()
        await core.store.reset_state(tenant_id)
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


def _instant(field: str, value: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError:
        raise _field_error(field, "must be an ISO-8601 instant") from None


async def set_clock(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    body = wire_control.control_body("clock", body)
    mode, scale, start = body.get("mode"), body.get("scale"), body.get("start")
    instant = None
    if start is not None:
        instant = _instant("start", str(start))
    core.clock.configure(mode, float(scale) if scale is not None else None, instant)
    await settle(core)
    await core.durable.save()
    return core.clock.to_dict()


async def advance_clock(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    """Move the clock forward, then process everything that became due before answering, so a
    status read right after sees exactly the state at the new instant."""
    body = wire_control.control_body("clock/advance", body)
    seconds = 0.0
    for name, unit in (("seconds", 1), ("minutes", 60), ("hours", 3600)):
        seconds += unit * body.get(name, 0)
    core.clock.advance(seconds)
    await settle(core)
    await core.durable.save()
    return core.clock.to_dict()


def set_seed(core: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    seed = wire_control.control_body("seed", body)["seed"]
    reseed(core, seed)
    return {"seed": seed}


def scenario_from(core: Emulator, body: dict[str, Any]) -> Scenario:
    """`{"name": bundled-name-or-file}` or `{"yaml": "..."}`."""
    body = wire_control.control_body("scenario", body)
    if "yaml" in body:
        return core.scenarios.from_yaml(body["yaml"])
    return core.scenarios.resolve(body["name"])


async def set_global_scenario(core: Emulator, scenario: Scenario) -> None:
    """Put `scenario` in force for everyone, and keep it for a restart."""
    core.scenarios.set_global(scenario)
    await core.store.put_state(GLOBAL_SCENARIO, _kept(scenario))


async def set_tenant_scenario(core: Emulator, tenant_id: str, scenario: Scenario | None) -> None:
    """Put `scenario` in force for one tenant (None: drop it), and keep that for a restart."""
    core.scenarios.set_tenant(tenant_id, scenario)
    kept = None if scenario is None else (scenario.name, scenario.source, scenario.text)
    await core.store.put_tenant_scenario(tenant_id, kept)


def _kept(scenario: Scenario) -> dict[str, str]:
    return {"name": scenario.name, "source": scenario.source, "text": scenario.text}


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
        "journal_size": len(core.journal),
    }


def _current_settings(core: Emulator) -> dict[str, Any]:
    return {
        name: (None if value is None else "***" if name in SECRET_SETTINGS else str(value))
        for name, value in vars(core.settings).items()
    }


async def judge(
    core: Emulator, tenant_id: str | None, thresholds: verdict.Thresholds
) -> dict[str, Any]:
    """The verdict on the clients of one tenant (or of all): the journal's entries, judged with
    what the store knows of the tenant's batches (their status and what their input was)."""
    entries = core.journal.select(tenant_id=tenant_id)
    digests = {f.id: f.sha256 for f in await core.store.all_files(tenant_id)}
    facts = [
        verdict.BatchFacts(
            b.id,
            b.tenant_id,
            b.status,
            b.created_at,
            b.completed_at,
            digests.get(b.input_file_id) or b.input_file_url,
        )  # fmt: skip
        for b in await core.store.all_batches(tenant_id)
    ]
    findings = verdict.judge(entries, facts, thresholds, core.journal.oldest())
    return {
        "findings": findings,
        "thresholds": {
            "min_poll_interval": thresholds.min_poll_interval,
            "rate_limit": thresholds.rate_limit,
        },  # fmt: skip
        "requests_judged": len(entries),
    }


def default_thresholds(core: Emulator) -> verdict.Thresholds:
    settings = core.settings
    return verdict.Thresholds(settings.verdict_min_poll_interval, settings.verdict_rate_limit)


# --- what the dashboard reads and does across tenants ------------------------------------------

#: the most lines one page of a batch's detail shows
MAX_LINES, LINE_STATUSES = wire.MAX_LINES, wire.LINE_STATUSES


async def batch_lines(
    core: Emulator, tenant_id: str, batch_id: str, offset: int, limit: int, status: str | None
) -> dict[str, Any]:
    """A page of a batch's request lines with their results, from position `offset` (0-based),
    and where the next page starts (None after the last)."""
    batch = await core.batches.get_batch(tenant_id, batch_id)
    rows = await core.store.batch_lines(batch.seq, offset, limit, status)
    next_offset = rows[-1][0] + 1 if len(rows) == limit else None
    return {
        "batch_id": batch.id, "total_count": batch.total_count, "offset": offset,
        "limit": limit, "status": status, "next_offset": next_offset,
        "items": [wire.batch_line(*row) for row in rows],
    }  # fmt: skip


def changes(core: Emulator) -> dict[str, Any]:
    """A mark that moves whenever something the dashboard shows may have changed (a commit to
    the store, a journaled request), and the clock: polled often, so it reads two counters."""
    return {"mark": f"{core.store.writes}.{core.journal.recorded}", "clock": core.clock.to_dict()}
