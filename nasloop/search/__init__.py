"""Latency-constrained search: oracles and the Optuna study."""
from .oracles import (DEFAULT_ORACLE, LatencyOracle, PredictorOracle, TableOracle, fit_on_device,
                      get_oracle, split_cells)
from .storage import check_storage, check_study, study_settings
from .study import MODES, OBJECTIVES, SAMPLERS, Candidate, SearchResult, check_budget, run_search

__all__ = ["DEFAULT_ORACLE", "MODES", "OBJECTIVES", "SAMPLERS", "Candidate", "LatencyOracle",
           "PredictorOracle", "SearchResult", "TableOracle", "fit_on_device", "get_oracle",
           "run_search", "split_cells", "check_budget", "check_storage", "check_study", "study_settings"]
