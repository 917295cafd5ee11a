"""A conformance suite for ScaiGrid's wire format: the checks of every assumption the emulator
makes (the README's assumptions table), run over HTTP against any endpoint, the emulator or the
real service; read-only unless writes are allowed.

`checks` holds the table of checks, `probe` how they talk and what they keep as evidence,
`receiver` the webhook receiver, `runner` the run and its report, `options` what a run may do.
"""
