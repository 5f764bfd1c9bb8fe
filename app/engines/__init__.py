"""Engines: one loaded model each, in its own worker process (see DESIGN.md)."""
