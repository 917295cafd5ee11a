"""The scenario language: its schema, the scenario model, the registry of scopes, and plans."""
