"""A command-line client of the batch API: it speaks the wire format, so it works against any
emulator and against the real service (`api`: the calls; `progress`: what `--wait` shows;
`commands`: the subcommands `cli` registers)."""
