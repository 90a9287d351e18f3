"""Latency predictors: one contract (:class:`Predictor`), many registered backends."""
from .base import Predictor, cross_val_predict, load_predictor
from .registry import (ENTRY_POINT_GROUP, create_predictor, get_predictor_class, list_predictors,
                       register_predictor)

# importing the backend modules registers them
from . import auto, gcn, layerwise, linear, transfer, xgb  # noqa: E402,F401

__all__ = ["ENTRY_POINT_GROUP", "Predictor", "create_predictor", "cross_val_predict",
           "get_predictor_class",
           "list_predictors", "load_predictor", "register_predictor"]
