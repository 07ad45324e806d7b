"""Worked examples for myrq (not part of the installed package)."""
