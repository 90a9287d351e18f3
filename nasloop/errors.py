"""Exceptions that carry a message fit to show a user as one line.

Every error nasloop raises for bad input derives from :class:`NasloopError`, so the
CLI can print ``str(err)`` and exit non-zero instead of a traceback.
"""
from __future__ import annotations


class NasloopError(Exception):
    """Base class: the message names the bad input and how to fix it."""


class ArchError(NasloopError, ValueError):
    """A malformed architecture (string, tuple or index)."""


class DataError(NasloopError):
    """A missing, corrupt or unsafe data file or directory."""


class DeviceError(NasloopError, KeyError):
    """An unknown device name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class NotFittedError(NasloopError, ValueError, AttributeError):
    """``predict`` (or ``save``) was called before ``fit``."""


class ConfigError(NasloopError, ValueError):
    """A bad hyperparameter, config file or ``--set`` pair."""
