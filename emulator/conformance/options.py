"""What a conformance run may do and how long it may wait (no imports: the command line reads
the defaults without loading the suite)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    #: send requests other than GET: create data, maybe spend money
    writes: bool = False
    #: the chat model of the one-line test batches
    model: str = "scailabs/poolnoodle-omni"
    #: seconds between polls of a test batch
    poll_interval: float = 10.0
    #: seconds a test batch may take to end
    timeout: float = 900.0
    #: a public URL that reaches the local webhook receiver (default: its loopback URL)
    receiver_url: str | None = None
    #: the local webhook receiver's port (0: any free one)
    receiver_port: int = 0
