"""nasloop: hardware-aware neural architecture search over NAS-Bench-201.

Predict a CNN's latency from its graph, and plug any latency oracle (benchmark table,
live measurement, fitted predictor) into Optuna-driven search.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import NasloopError  # noqa: E402
from .space import Arch, all_archs  # noqa: E402

__all__ = ["Arch", "NasloopError", "__version__", "all_archs"]
