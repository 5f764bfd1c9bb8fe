"""FastSlow: a fast model and a thinking model side by side, with honest numbers."""

__version__ = "0.1.0"
