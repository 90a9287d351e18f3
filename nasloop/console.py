"""Shared terminal output: rich tables and progress bars on stderr-safe consoles, JSON on stdout."""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

#: a table piped to a file or another program is drawn this wide (rich's 80 columns
#: would break arch strings over several lines); $COLUMNS still decides where it is set
PIPED_WIDTH = 200


def _width(stream) -> int | None:
    """None (rich decides: the terminal's width, or $COLUMNS) unless the output is piped."""
    is_tty = getattr(stream, "isatty", lambda: False)()
    return None if is_tty or os.environ.get("COLUMNS") else PIPED_WIDTH


#: results go to stdout; progress and warnings to stderr so ``--json`` output stays clean
out = Console(width=_width(sys.stdout))
err = Console(stderr=True, width=_width(sys.stderr))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _clean(obj.item())
    return obj


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout, NaN as null."""
    sys.stdout.write(json.dumps(_clean(obj), indent=2) + "\n")
    sys.stdout.flush()


def progress(transient: bool = False, disable: bool = False) -> Progress:
    """A progress bar with count, elapsed time and ETA, drawn on stderr (none if ``disable``).
    A transient bar is not drawn where stderr is no terminal: rich would leave only an
    empty line there (a log, a pipe)."""
    disable = disable or (transient and not err.is_terminal)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, transient=transient, disable=disable)


def fmt(v: float | None, nd: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"
