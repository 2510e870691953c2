"""The errors a training run stops with; ``kk-train`` prints a ``RunSetupError`` as one line."""

from __future__ import annotations

__all__ = ["RunInterrupted", "RunSetupError"]


class RunInterrupted(Exception):
    """Ctrl-C: the driver saved a checkpoint (when a stage was running) and stopped."""


class RunSetupError(ValueError):
    """A user error found while setting up the run (bad run directory, missing checkpoint,
    a TRL whose internals differ from the ones this code patches)."""
