"""Output paths checked before the work that fills them: one home for the two questions
every ``--out`` asks (where would it be created, and may a file be created there)."""
from __future__ import annotations

import tempfile
from pathlib import Path


def nearest_existing(folder: Path) -> Path:
    """``folder`` itself, or its nearest ancestor that exists (the missing ones would be
    created)."""
    while not folder.exists():
        folder = folder.parent
    return folder


def can_create_in(folder: str | Path) -> bool:
    """Whether a file can be created in ``folder``: tried, since os.access lies to root."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


__all__ = ["can_create_in", "nearest_existing"]
