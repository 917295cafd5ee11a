"""`python -m emulator` is the `scaigrid-emulator` command."""

from emulator.cli import main

raise SystemExit(main())
