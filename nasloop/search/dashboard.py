"""What optuna-dashboard shows of a nasloop study: the finalists' true latencies.

Trials carry ``arch`` and ``latency_ms`` (the oracle's prediction) as user attributes
while they run. True latencies are known only after the search, when at most ``--top``
finalists are checked, and Optuna refuses attributes on finished trials; so the checks
go to the study: a user attribute ``nasloop_true_checks`` (a list of dicts, for the
library and the dashboard's study page) and, where optuna-dashboard is installed, the
study's note (a Markdown table on the dashboard's study page).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from .study import Candidate

TRUE_CHECKS_ATTR = "nasloop_true_checks"


def true_checks(finalists: Sequence[Candidate], trial_of: Mapping[str, int]) -> list[dict]:
    """One JSON-ready row per checked finalist, naming the trial that evaluated it."""
    return [{"trial": trial_of.get(c.arch), "arch": c.arch, "accuracy": c.accuracy,
             "predicted_latency_ms": c.predicted_latency_ms,
             "true_latency_ms": c.true_latency_ms, "meets_budget": c.feasible_true}
            for c in finalists]


def note_markdown(rows: Sequence[dict], budget_ms: float, device: str, unit: str = "ms") -> str:
    what = (f"Budget {budget_ms:g} ms." if unit == "ms" else
            "Several targets: latencies are loads, the largest latency/budget over the "
            "devices, and the budget is 1.")
    lines = [f"## nasloop: finalists checked against true latency on {device}",
             "", f"{what} Finalists, most accurate first; the search stops "
             "at the first that truly meets the budget.", "",
             f"| trial | arch | predicted {unit} | true {unit} | meets budget |",
             "|---|---|---|---|---|"]
    for r in rows:
        true = "not in the table" if r["true_latency_ms"] is None else f"{r['true_latency_ms']:.3f}"
        verdict = {True: "yes", False: "no", None: "unverified"}[r["meets_budget"]]
        pred = r["predicted_latency_ms"]
        lines.append(f"| {r['trial']} | `{r['arch']}` | {pred:.3f} | {true} | {verdict} |")
    return "\n".join(lines) + "\n"


def record_true_checks(study: optuna.Study, finalists: Sequence[Candidate],
                       trial_of: Mapping[str, int], budget_ms: float, device: str,
                       unit: str = "ms") -> None:
    """Store the true checks on the study; a storage that refuses only costs a warning."""
    if not finalists:
        return
    rows = true_checks(finalists, trial_of)
    try:
        if study.user_attrs.get(TRUE_CHECKS_ATTR) != rows:
            study.set_user_attr(TRUE_CHECKS_ATTR, rows)
        try:
            from optuna_dashboard import save_note
        except ImportError:
            return
        save_note(study, note_markdown(rows, budget_ms, device, unit))
    except Exception as e:  # the result is already computed: never lose it for a note
        warnings.warn(f"could not record the true-latency checks on the study ({e})",
                      stacklevel=2)
