"""Fake inference: the engine, its request checks, and the model catalogue it answers for."""
