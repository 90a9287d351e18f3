"""What optuna-dashboard shows of a nasloop study: the finalists' true latencies.

Trials carry ``arch`` and ``latency_ms`` (the oracle's prediction) as user attributes
while they run. True latencies are known only after the search, when at most ``--top``
finalists are checked, and Optuna refuses attributes on finished trials; so the checks
go to the study: a user attribute ``nasloop_true_checks`` (a list of dicts, for the
library and the dashboard's study page) and, where optuna-dashboard is installed, the
study's note (a Markdown table on the dashboard's study page).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..units import format_ms

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from .study import Candidate

TRUE_CHECKS_ATTR = "nasloop_true_checks"


def true_checks(finalists: Sequence[Candidate], trial_of: Mapping[str, int],
                unit: str = "ms") -> list[dict]:
    """One JSON-ready row per checked finalist, naming the trial that evaluated it.

    With several targets the latencies are loads (``unit == "load"``) and ``per_device``
    holds each device's predicted and true ms.
    """
    rows = []
    for c in finalists:
        row = {"trial": trial_of.get(c.arch), "arch": c.arch, "accuracy": c.accuracy,
               "unit": unit, "predicted_latency": c.predicted_latency_ms,
               "true_latency": c.true_latency_ms, "meets_budget": c.feasible_true}
        if c.per_device:
            row["per_device"] = c.per_device
        rows.append(row)
    return rows


NOTE_HEADING = "## nasloop: finalists checked against true latency"
_VERDICT = {True: "yes", False: "no", None: "unverified"}


def _ms(v: float | None) -> str:
    return "not in the table" if v is None else f"{v:.3f}"


def note_markdown(rows: Sequence[dict], budget_ms: float, device: str) -> str:
    """The study note: a Markdown table of the checked finalists, ms per device."""
    several = any("per_device" in r for r in rows)
    what = "Each device has its own budget." if several else f"Budget {format_ms(budget_ms)}."
    lines = [f"{NOTE_HEADING} on {device}", "", f"{what} Finalists, most accurate first; "
             "the search stops at the first that truly meets the budget.", ""]
    if several:
        devs = [d["device"] for d in rows[0]["per_device"]]
        lines += ["| trial | arch | " + " | ".join(f"{d}: predicted / true ms" for d in devs)
                  + " | meets budget |", "|---|---|" + "---|" * len(devs) + "---|"]
        for r in rows:
            cells = " | ".join(f"{d['predicted_ms']:.3f} / {_ms(d['true_ms'])}"
                               if d["predicted_ms"] is not None else f"? / {_ms(d['true_ms'])}"
                               for d in r["per_device"])
            lines.append(f"| {r['trial']} | `{r['arch']}` | {cells} | "
                         f"{_VERDICT[r['meets_budget']]} |")
    else:
        lines += ["| trial | arch | predicted ms | true ms | meets budget |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['trial']} | `{r['arch']}` | {r['predicted_latency']:.3f} | "
                         f"{_ms(r['true_latency'])} | {_VERDICT[r['meets_budget']]} |")
    return "\n".join(lines) + "\n"


def record_true_checks(study: optuna.Study, finalists: Sequence[Candidate],
                       trial_of: Mapping[str, int], budget_ms: float, device: str,
                       unit: str = "ms", *, note: bool = True) -> None:
    """Store the true checks on the study; a storage that refuses only costs a warning.

    The dashboard note is written only where it is empty or nasloop's own: a note the
    user wrote on the study page is never replaced.
    """
    if not finalists:
        return
    rows = true_checks(finalists, trial_of, unit)
    try:
        if study.user_attrs.get(TRUE_CHECKS_ATTR) != rows:
            study.set_user_attr(TRUE_CHECKS_ATTR, rows)
        if not note:
            return
        try:
            from optuna_dashboard import save_note
            from optuna_dashboard._note import get_note_from_system_attrs
        except ImportError:
            return
        attrs = study._storage.get_study_system_attrs(study._study_id)
        current = (get_note_from_system_attrs(attrs, None) or {}).get("body", "")
        if current and not current.startswith(NOTE_HEADING):
            return
        save_note(study, note_markdown(rows, budget_ms, device))
    except Exception as e:  # the result is already computed: never lose it for a note
        from ..console import err
        err.print(f"[yellow]warning:[/yellow] could not record the true-latency checks on "
                  f"the study ({e})", highlight=False)
