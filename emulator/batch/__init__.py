"""Batches: the service behind the batch routes, files and input sources, parsing, the worker
and pricing."""
