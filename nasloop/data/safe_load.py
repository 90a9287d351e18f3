"""Loading benchmark files without ever executing code from them.

Pickles and torch files can run arbitrary code when loaded naively. The BRP-NAS pickles
hold only a dict of tuples to floats (some as numpy float64 scalars), so the unpickler
below admits exactly the two numpy globals needed to rebuild a float scalar and nothing
else. Torch files are read with ``weights_only=True``.
"""
from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

_ALLOWED_DTYPES = {"f8", "f4", "f2", "i8", "i4"}


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    if not isinstance(spec, str) or spec not in _ALLOWED_DTYPES:
        raise pickle.UnpicklingError(f"dtype {spec!r} is not allowed")
    return np.dtype(spec)


def _safe_scalar(dtype: Any, data: Any = None) -> float:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fi" or not isinstance(data, bytes):
        raise pickle.UnpicklingError("only numeric numpy scalars are allowed")
    if len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar has the wrong byte length")
    return float(np.frombuffer(data, dtype=dtype)[0])


_ALLOWED_GLOBALS = {
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only plain containers, numbers and numpy float scalars."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise DataError(f"refused to load {path}: {e} (only latency tables of plain numbers "
                        "are accepted; re-download the file)") from None
    except Exception as e:  # truncated or garbage: EOFError, ValueError, struct errors...
        raise DataError(f"{path} is corrupt or not a pickle ({type(e).__name__}: {e}); "
                        "re-download the file") from None


def load_torch(path: str | Path, fix: str = "re-download the file") -> Any:
    """``torch.load`` with ``weights_only=True``, errors turned into one clear line ending in ``fix``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"cannot read {path}: no such file")
    try:
        with warnings.catch_warnings():  # torch's notes on odd files: the error says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"refused to load {path}: {torch_error_line(e)} (only plain tensors, "
                        f"lists and dicts are accepted; {fix})") from None


def torch_error_line(e: Exception) -> str:
    """The first line of a torch.load error, without torch's advice to turn safety off."""
    import re

    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    # torch suggests re-running with weights_only=False: that executes code, never advise it
    line = re.split(r"(?i)\s*(?:re-?running|in pytorch 2\.6|you can|if you trust)", line)[0]
    if len(line) > 200:  # a long message: its first sentence, never a cut-off phrase
        line = line.split(". ")[0][:200]
    return line.rstrip(" .,;:") or type(e).__name__
