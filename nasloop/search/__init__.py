"""Latency-constrained search: oracles, the feasible set, samplers and the Optuna study."""
from .feasible import FeasibleSpace
from .oracles import (DEFAULT_ORACLE, Calibration, LatencyOracle, PredictorOracle, TableOracle,
                      conformal_margin, fit_on_device, get_oracle, split_cells)
from .samplers import (DEFAULT_SAMPLER, SAMPLERS, FeasibleSampler, GuidedSampler, NetworkSampler,
                       RegularizedEvolutionSampler, make_sampler)
from .multi import Target, run_multi_search
from .adaptive import AdaptiveConfig, adaptive_search
from .storage import check_storage, check_study, study_settings
from .study import (MODES, OBJECTIVES, Candidate, SearchConfig, SearchResult, check_budget,
                    objective_label, run_search)

__all__ = ["AdaptiveConfig", "adaptive_search", "DEFAULT_ORACLE", "DEFAULT_SAMPLER", "MODES", "OBJECTIVES", "SAMPLERS", "Calibration",
           "Candidate", "FeasibleSampler", "FeasibleSpace", "GuidedSampler", "LatencyOracle",
           "NetworkSampler", "PredictorOracle", "RegularizedEvolutionSampler", "SearchConfig",
           "SearchResult", "TableOracle", "Target", "check_budget", "check_storage", "check_study",
           "conformal_margin", "fit_on_device", "get_oracle", "make_sampler", "objective_label",
           "run_multi_search", "run_search", "split_cells", "study_settings"]
