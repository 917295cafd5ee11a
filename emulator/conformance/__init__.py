"""A conformance suite for ScaiGrid's wire format: the checks of every assumption the emulator
makes (the README's assumptions table), run over HTTP against any endpoint, the emulator or the
real service. Read-only unless writes are allowed."""

from emulator.conformance.checks import BY_NAME, CHECKS, Check
from emulator.conformance.probe import Options
from emulator.conformance.runner import (
    Outcome,
    Unreachable,
    client_for,
    exit_code,
    render_json,
    render_text,
    run,
    unknown_names,
)

__all__ = [
    "BY_NAME", "CHECKS", "Check", "Options", "Outcome", "Unreachable", "client_for",
    "exit_code", "render_json", "render_text", "run", "unknown_names",
]  # fmt: skip
