"""errlearn: a local-first diagnostics service that learns from every error a fleet throws."""

__version__ = "0.1.0"
