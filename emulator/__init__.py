"""scaigrid-emulator: a local emulator of ScaiGrid's Batch Inference API."""

__version__ = "0.1.0"
