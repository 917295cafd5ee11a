"""HTTP glue: each handler parses, calls one domain function, and renders."""
