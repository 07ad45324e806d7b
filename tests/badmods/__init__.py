"""Modules that misbehave when a worker imports them (for the worker tests)."""
