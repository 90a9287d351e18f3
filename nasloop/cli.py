"""The ``nasloop`` command line: a thin layer over the library API."""
from __future__ import annotations

import dataclasses
import math
import os
import sys

import click
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import predictor_params
from .console import err, fmt, out, print_json
from .errors import NasloopError
from .paths import can_create_in, nearest_existing
from .space import Arch, coerce_archs


class NasloopGroup(click.Group):
    """Turns nasloop's own errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        import warnings

        def one_line(message, category, filename, lineno, file=None, line=None) -> None:
            # a warning is for the user: one line, not a source location
            err.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False,
                      soft_wrap=True)

        given = [*getattr(ctx, "_protected_args", []), *ctx.args]  # click empties them
        try:
            with warnings.catch_warnings():
                warnings.showwarning = one_line
                return super().invoke(ctx)
        except NasloopError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except click.UsageError as e:  # a bad option value: one line too, click's exit code 2
            sub = e.ctx.command_path if e.ctx is not None else ctx.command_path
            if e.ctx is None or e.ctx.command is self:  # raised parsing a command's options
                name = next((a for a in given if a in self.commands), None)
                sub = f"{ctx.command_path} {name}" if name else sub
            err.print(f"[red]error:[/red] {escape(e.format_message())} (see '{escape(sub)} "
                      "--help')", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)


def data_dir_option(f):
    # a --data-dir given must exist, even where the device is a CSV that does not need it:
    # a typo there is never ignored
    return click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                        callback=_existing_data_dir,
                        help="Benchmark data folder (eagle/, help/, nats/); default $NASLOOP_DATA.")(f)


def _existing_data_dir(ctx, param, value: str | None) -> str | None:
    from pathlib import Path

    if value and value.strip() and not Path(value).expanduser().exists():
        raise click.BadParameter(f"{value} does not exist: give the folder holding eagle/, "
                                 "help/ and nats/", param_hint="--data-dir")
    return value


def device_options(f):
    f = click.option("--skip-bad-rows", is_flag=True,
                     help="For a device CSV: use the good rows and list the bad ones as warnings.")(f)
    f = click.option("--device", "-d", required=True,
                     help="Device name (see 'nasloop devices') or a CSV with columns arch,latency_ms.")(f)
    return data_dir_option(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")(f)


#: warnings shown for a device table's skipped rows before the rest are counted
NOTES_SHOWN = 10


def load_device_cli(device: str, data_dir: str | None, skip_bad_rows: bool):
    from .data import load_device

    table = load_device(device, data_dir, skip_bad_rows=skip_bad_rows)
    for note in table.notes[:NOTES_SHOWN]:
        err.print(f"[yellow]warning:[/yellow] {escape(table.source)}: {escape(note)}",
                  highlight=False, soft_wrap=True)
    if len(table.notes) > NOTES_SHOWN:
        err.print(f"[yellow]warning:[/yellow] {escape(table.source)}: ... and "
                  f"{len(table.notes) - NOTES_SHOWN} more like these", highlight=False,
                  soft_wrap=True)
    return table


def load_devices_cli(specs: list[str], data_dir: str | None, skip_bad_rows: bool) -> list:
    """Several ``--device`` tables, one name each: CSVs whose file names collide
    (``boardA/latency.csv``, ``boardB/latency.csv``) are named by their paths as given."""
    from pathlib import Path

    tables = [load_device_cli(d, data_dir, skip_bad_rows) for d in specs]
    names = [t.name for t in tables]
    return [dataclasses.replace(t, name=str(Path(spec).with_suffix("")))
            if names.count(t.name) > 1 and spec.lower().endswith(".csv") else t
            for t, spec in zip(tables, specs)]


def parse_archs_cli(values) -> list[Arch]:
    try:
        return coerce_archs(values)
    except NasloopError as e:
        raise click.BadParameter(str(e), param_hint="ARCH") from None


@click.group(cls=NasloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nasloop")
def main() -> None:
    """Hardware-aware neural architecture search over NAS-Bench-201."""


def run() -> None:
    """The ``nasloop`` script (and ``python -m nasloop``): :func:`main`, then a quick exit.

    Freezing the objects a command made spares the interpreter's teardown from collecting
    them: with torch loaded that takes over a second (more on a busy machine), and a Ctrl-C'd
    search must give the prompt back at once. atexit handlers still run.
    """
    import gc

    try:
        main(prog_name="nasloop")
    finally:
        gc.freeze()


@main.command()
@data_dir_option
@json_option
def devices(data_dir: str | None, as_json: bool) -> None:
    """List the devices whose latency tables are available."""
    from .data import device_summaries

    rows, problems = device_summaries(data_dir)  # a wrong path is an error, not an empty list
    for p in problems:
        err.print(f"[yellow]warning:[/yellow] {escape(p)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(rows)
        if problems:
            sys.exit(1)
        return
    if not rows:
        err.print("no devices: pass --data-dir DIR or set NASLOOP_DATA=DIR to list benchmark tables")
    t = Table(title="nasloop devices (latency in ms)")
    for c in ("name", "description", "source", "cells", "median", "min", "max"):
        t.add_column(c, justify="right" if c in ("cells", "median", "min", "max") else "left",
                     overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["description"], r["source"].split("/")[-1], str(r["cells"]),
                  fmt(r["median_ms"]), fmt(r["min_ms"]), fmt(r["max_ms"]))
    out.print(t)
    if problems:
        err.print(f"{len(problems)} problem(s) with the data directory or its tables (listed "
                  "above)")
        sys.exit(1)


@main.command()
@device_options
@click.argument("archs", nargs=-1, required=True)
@json_option
def lookup(device: str, data_dir: str | None, skip_bad_rows: bool, archs: tuple[str, ...],
           as_json: bool) -> None:
    """True latency (and accuracy, when known) of each ARCH on a device.

    ARCH is an arch string such as '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|' or a
    quoted 6-tuple of op indices such as '(3,0,1,2,4,3)' (none=0, skip_connect=1,
    nor_conv_1x1=2, nor_conv_3x3=3, avg_pool_3x3=4).
    """
    from .data import DATASETS, load_accuracy

    cells = parse_archs_cli(archs)
    table = load_device_cli(device, data_dir, skip_bad_rows)
    try:
        acc = load_accuracy(data_dir)
    except NasloopError as e:  # a broken accuracy table must not hide good latencies
        err.print(f"[yellow]warning:[/yellow] accuracy not shown: {escape(str(e))}", highlight=False,
                  soft_wrap=True)
        acc = None
    if acc is None and not (data_dir or os.environ.get("NASLOOP_DATA")):
        err.print("[yellow]note:[/yellow] accuracy not shown: no data directory; pass "
                  "--data-dir DIR or set NASLOOP_DATA to the folder holding nats/",
                  highlight=False, soft_wrap=True)
    rows = []
    for a in cells:
        row: dict = {"arch": str(a), "latency_ms": table.get(a)}
        if acc is not None:
            for k in DATASETS:
                row[k] = acc.get(a, k)
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"{table.name}: true latency")
    t.add_column("arch", overflow="fold")  # the answer: never cut
    t.add_column("latency ms", justify="right")
    keys = list(DATASETS) if acc is not None else []
    for k in keys:
        t.add_column(f"{k} %", justify="right")
    for r in rows:
        lat = fmt(r["latency_ms"]) if r["latency_ms"] is not None else "absent"
        t.add_row(r["arch"], lat, *(fmt(r[k], 2) for k in keys))
    out.print(t)


if __name__ == "__main__":  # pragma: no cover
    main()


# ---------------------------------------------------------------- predictors ----------
class _EpochBar:
    """Adapts a predictor's progress callback to a rich progress bar."""

    def __init__(self, bar, label: str):
        self.bar, self.label, self.task, self.member = bar, label, None, -1

    def __call__(self, epoch: int, total: int, info: dict) -> None:
        member = info.get("member", 0)
        if self.task is None or member != self.member:
            self.member = member
            if self.task is not None:
                self.bar.update(self.task, visible=False)
            suffix = f" #{member + 1}" if member else ""
            self.task = self.bar.add_task(f"{self.label}{suffix}", total=total, info="")
        parts = [f"{k.replace('_', ' ')} {v:.4f}" for k, v in info.items()
                 if k in ("train_loss", "val_loss")]
        if info.get("candidate"):  # auto: which candidate(s) are training now
            parts.insert(0, str(info["candidate"]))
        self.bar.update(self.task, completed=epoch, info="  ".join(parts))


def _metrics_table(title: str, rows: list[dict], keys=("acc_1", "acc_5", "acc_10", "spearman",
                                                        "kendall", "mape", "err_p90")) -> Table:
    t = Table(title=title)
    # label columns (names) and the chosen metrics only: every metric is in --json, and a
    # column per metric is unreadable at 80 columns
    labels = [k for k, v in (rows[0] if rows else {}).items() if isinstance(v, str)]
    for k in labels:
        t.add_column(k, no_wrap=True)
    for k in keys:
        t.add_column(k, justify="right")
    for r in rows:
        t.add_row(*[r[k] for k in labels],
                  *[fmt(r.get(k), 3 if k in ("spearman", "kendall") else 2) for k in keys])
    return t


def split_options(f):
    f = click.option("--split", "split_kind", default="random", show_default=True,
                     type=click.Choice(["random", "grouped"]),
                     help="random: the paper's split; grouped: no test cell has an isomorph "
                          "in training.")(f)
    return f


def check_out_folder(path: str | None, force: bool, *, replaces: bool = True) -> None:
    """Refuse an output folder that cannot be written, before any fitting.

    ``replaces``: the command deletes the folder first (``fit-predictor --force``), which
    is allowed only for a folder holding a saved predictor: never the user's other files.
    """
    from pathlib import Path

    from .predictors.base import is_predictor_folder

    if not path:
        return
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise click.BadParameter(f"{path} is a file; give a folder", param_hint="--out")
    if p.is_dir() and any(p.iterdir()):
        if not force:
            raise click.BadParameter(f"{path} already exists and is not empty; pass --force "
                                     "to overwrite it or choose another folder",
                                     param_hint="--out")
        if replaces and not is_predictor_folder(p):
            raise click.BadParameter(f"{path} is not empty and holds no saved nasloop "
                                     "predictor; --force replaces only a predictor folder, "
                                     "so choose a new or empty folder", param_hint="--out")
    folder = nearest_existing(p.resolve())
    if not folder.is_dir():
        raise click.BadParameter(f"cannot create {path}: {folder} is a file, not a folder",
                                 param_hint="--out")
    if not can_create_in(folder):
        raise click.BadParameter(f"cannot create {path}: {folder} is not writable",
                                 param_hint="--out")


def check_out_file(path: str, option: str = "--out", *, force: bool | None = None) -> None:
    """Refuse an output file that cannot be written, before the work that fills it.

    ``force``: None where the command appends to the file or resumes it; else an existing
    file is replaced only with ``--force``.
    """
    from pathlib import Path

    p = Path(path).expanduser()
    if p.is_dir():
        raise click.BadParameter(f"{path} is a folder; give the path of a file", param_hint=option)
    if force is False and p.exists():
        raise click.BadParameter(f"{path} already exists; pass --force to overwrite it or "
                                 "choose another file", param_hint=option)
    folder = nearest_existing(p.resolve().parent)
    if not folder.is_dir():
        raise click.BadParameter(f"cannot create {path}: {folder} is a file, not a folder",
                                 param_hint=option)
    if not can_create_in(folder) or (p.exists() and not os.access(p, os.W_OK)):
        raise click.BadParameter(f"cannot write {path}: {folder} is not writable",
                                 param_hint=option)


def _resumes(storage: str | None, study_name: str | None) -> bool:
    """Whether ``--storage`` holds the study already: a resume or a report of it, whose
    ``--out`` files are the same study's and may be brought up to date."""
    if not storage:
        return False
    from .search.storage import check_study

    try:
        check_study(storage, study_name, must_exist=True)
    except NasloopError:
        return False
    return True


def _report_settings(storage, study_name, devices, budgets, oracle, objective, mode, sampler):
    """``search --report``: the device, budget, oracle, objective, mode and sampler the
    study was run with, where the command line does not give them (a value given that
    differs is refused later, as for a resume)."""
    from .search.storage import check_study, stored_settings

    check_study(storage, study_name, must_exist=True)
    st = stored_settings(storage, study_name)
    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE

    if "device" in st and not devices and "+" not in st["device"]:
        devices = (st["device"],)
    if "budget_ms" in st and not budgets and len(devices) == 1:
        budgets = (float(st["budget_ms"]),)
    if "oracle" in st and oracle is None:
        if st["oracle"].startswith("file:"):
            raise click.UsageError(f"the study was run with the saved predictor "
                                   f"{st['oracle'][5:]}: give its folder as --oracle")
        oracle = st["oracle"]
    objective = st.get("objective", objective) if not given("objective") else objective
    mode = st.get("mode", mode) if not given("mode") else mode
    sampler = st.get("sampler", sampler) if sampler is None else sampler
    return devices, budgets, oracle, objective, mode, sampler


def _split_sizes(tables: list, train: int, val: int) -> tuple[int, int]:
    """``--train`` / ``--val`` as given; left at their defaults on a table too small for
    them (a user's board), 70 % / 10 % of its cells, the rest tested, and said so."""
    ctx = click.get_current_context()
    if any(ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE
           for p in ("train", "val")):
        return train, val
    small = min(tables, key=len)
    n = len(small)
    if train + val < n:
        return train, val
    fit, hold = max(1, int(n * 0.7)), int(n * 0.1)
    err.print(f"{small.name} has {n} measured cells, too few for the default --train "
              f"{train} + --val {val} to leave test cells: fitting on {fit}, validating on "
              f"{hold}, testing on the other {n - fit - hold} (give --train / --val to choose)",
              highlight=False, soft_wrap=True)
    return fit, hold


@main.command("fit-predictor")
@device_options
@click.option("--predictor", "-p", default="auto", show_default=True,
              help="Registered predictor name ('nasloop predictors' lists them).")
@click.option("--train", default=900, show_default=True, type=click.IntRange(1),
              help="Cells the predictor is fitted on (a seeded split of the device's table).")
@click.option("--val", default=100, show_default=True, type=click.IntRange(0),
              help="Validation cells, unseen in fitting: what 'auto' chooses by and what the "
                   "GCNs early-stop on; the rest of the table is the test cells.")
@split_options
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Seed of the split (and of the model, unless --model-seed).")
@click.option("--model-seed", default=None, type=click.IntRange(0, 2**32 - 1),
              help="Seed of the model's initialisation [default: --seed].")
@click.option("--config", default=None, help="JSON file (or name in configs/) of hyperparameters.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one hyperparameter.")
@click.option("--out", "out_path", default=None, type=click.Path(),
              help="Folder to save the fitted predictor.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out folder.")
@click.option("--random", "random_cells", is_flag=True,
              help="With -p transfer: train on a seeded random split, not on the --train cells "
                   "the pretrained model finds most informative (measure --cells-for transfer).")
@json_option
def fit_predictor(device, data_dir, skip_bad_rows, predictor, train, val, split_kind, seed,
                  model_seed, config, sets, out_path, force, random_cells, as_json) -> None:
    """Fit a predictor on a seeded split of a device's cells; report test metrics."""
    import time

    from .console import progress as make_progress
    from .evaluation import resolve_params
    from .metrics import latency_metrics
    from .space import all_archs
    from .splits import SplitSpec, fit_on_split, split_cells

    check_out_folder(out_path, force)
    table = load_device_cli(device, data_dir, skip_bad_rows)
    params = predictor_params(predictor, config, sets)
    resolve_params(predictor, params)  # a bad name or value fails before the fit
    few_shot = predictor == "transfer" and not random_cells
    if not few_shot:
        train, val = _split_sizes([table], train, val)
    spec = SplitSpec(train, val, seed, split_kind)
    if few_shot:  # the cells `measure --cells-for transfer` would time; no validation cells
        from .splits import fair_params
        from .transfer import split_informative
        params = fair_params(predictor, table.name, params)  # a model that has not seen it
        chosen, test = split_informative(table, train, pretrained=params.get("pretrained"))
    else:
        _, _, test = split_cells(table, train, val, seed, split_kind)
    if not test:
        err.print(f"[yellow]warning:[/yellow] --train {train} + --val {val} uses every measured "
                  f"cell of {table.name}: no test cells are left, so no metrics; lower --train "
                  "to keep some", highlight=False, soft_wrap=True)
    t0 = time.perf_counter()
    try:
        with make_progress(transient=True) as bar:
            if few_shot:
                from .predictors import create_predictor
                pred = create_predictor(predictor, **params).fit(chosen, table.lookup(chosen))
                info = {"device": table.name, "device_source": table.source,
                        "split": {"train": train, "val": 0, "test": len(test), "seed": None,
                                  "kind": "informative", "model_seed": None}}
            else:
                pred, info = fit_on_split(predictor, table, spec, params=params,
                                          model_seed=model_seed,
                                          progress=_EpochBar(bar, f"fit {predictor}"))
    except KeyboardInterrupt:  # a fit half done is no predictor: say so, keep nothing
        err.print(f"interrupted after {time.perf_counter() - t0:.0f} s of fitting: nothing was "
                  "saved; re-run the same command to fit again")
        sys.exit(130)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred.predict(list(all_archs()))
    predict_s = time.perf_counter() - t0
    m = latency_metrics(table.lookup(test), pred.predict(test)) if test else {}
    m.update(fit_seconds=fit_s, predict_seconds=predict_s)
    seen = bool(test) and table.name in pred.pretraining_tables()
    if seen:
        _warn_seen_in_pretraining(table.name, predictor)
    info["metrics"] = m
    from .predictors.base import is_predictor_folder

    if out_path and force and is_predictor_folder(out_path):  # checked before the fit
        import shutil
        shutil.rmtree(out_path, ignore_errors=True)
    saved = str(pred.save(out_path, **info)) if out_path else None
    res = {"device": table.name, "predictor": predictor, "params": pred.get_params(),
           "split": info["split"], "metrics": m, "saved_to": saved,
           "seen_in_pretraining": seen}
    if hasattr(pred, "choice_"):
        res["choice"] = pred.choice_
    nearest = getattr(pred, "source_", {}).get("nearest_tables")
    if nearest is not None:  # transfer's mixture prior: which pretraining tables the cells resemble
        res["nearest_tables"] = nearest
        res["population_weight"] = pred.source_.get("population_weight")
    if as_json:
        print_json(res)
        return
    out.print(_metrics_table(f"{predictor} on {table.name}: {len(test)} test cells "
                             + (f"(trained on the {train} most informative cells)" if few_shot
                                else f"({split_kind} split, seed {seed})"),
                             [{"predictor": predictor, **m}]))
    if hasattr(pred, "choice_"):
        out.print(_choice_table(pred.choice_))
    if nearest is not None:
        out.print("the measured cells look most like: "
                  + (", ".join(f"{n} ({w:.2f})" for n, w in nearest.items()) or "no one table")
                  + f"; the population prior keeps {res['population_weight']:.2f}")
    out.print(f"fit {fit_s:.1f} s, predict all 15,625 cells {predict_s:.3f} s"
              + (f"; saved to {saved}" if saved else ""))


def _warn_seen_in_pretraining(device: str, predictor: str) -> None:
    """Test metrics of a model whose pretrained part learnt the device's own table."""
    from .predictors.base import fair_test_hint

    err.print(f"[yellow]warning:[/yellow] {predictor} on {device} used a transfer model "
              f"pretrained on {device}'s own table, so these test metrics are optimistic for a "
              f"device it has not seen; for a fair test, {fair_test_hint(device)}",
              highlight=False, soft_wrap=True)


def _choice_table(choice: dict) -> Table:
    """What ``auto`` tried, scored on validation cells, and what it kept."""
    from .predictors.auto import refit_dropped

    chosen = dict(zip(choice["chosen"], choice["weights"]))
    t = Table(title=f"auto: validation scores on {choice['val_cells']} cells "
                    f"(lower log-loss is better)")
    for c in ("candidate", "backend", "val log-loss", "val acc_5", "val acc_10", "fit s", "chosen"):
        t.add_column(c, justify="left" if c in ("candidate", "backend") else "right",
                     overflow="fold")
    for label, r in choice["tried"].items():
        if r.get("failed"):
            t.add_row(label, r["backend"], "failed", "", "", "", r["failed"])
            continue
        t.add_row(label, r["backend"], f"{r['val_log_loss']:.4f}", fmt(r["val_acc_5"], 1),
                  fmt(r["val_acc_10"], 1), f"{r['fit_seconds']:.1f}",
                  f"x{chosen[label]:.2f}" if label in chosen else "")
    if (choice.get("blend_check") or {}).get("rule") == "transfer_share":
        lead, pre = choice["chosen"]
        t.caption = (f"{lead} leads on these few cells, so it is blended with {pre}, "
                     f"pretrained on other devices (transfer_share; 0 keeps {lead} alone)")
    tc = choice.get("transfer_check")
    if tc is not None:
        t.caption = (f"blended with transfer (pretrained on other devices) x{tc['weight']:.2f}: "
                     f"validation log-loss {tc['val_log_loss']:.4f}, {tc['within']} cells "
                     "within 10 %" if tc["kept"] else
                     "transfer (pretrained on other devices) was tried beside the choice and "
                     f"not kept: validation log-loss {tc['val_log_loss']:.4f} at its best "
                     f"weight, {tc['within']} cells within 10 % against {tc['best_within']}"
                     )
        if tc.get("kinds_kept"):
            t.caption += (f"; then, instead of one weight, x{tc['seen_weight']:.2f} on "
                          f"networks among the training cells and "
                          f"x{tc['unseen_weight']:.2f} on the rest "
                          f"(validation log-loss {tc['kinds_val_log_loss']:.4f})")
        if tc.get("band_kept"):
            t.caption += (f"; then held within a factor {math.exp(tc['band']):.3f} of "
                          f"transfer's prediction either way (band {tc['band']:g}): "
                          f"validation log-loss {tc['band_val_log_loss']:.4f}, "
                          f"{tc['band_within']} cells within 10 %")
        t.caption += " (--set transfer_blend=false skips it)"
    for label, rc in refit_dropped(choice).items():
        t.caption = ((t.caption + "; ") if t.caption else "") + (
            f"{label}'s refit on every labelled cell fitted them worse (log-loss "
            f"{rc['labelled_log_loss']:.4f}) than its first fit predicted the validation "
            f"cells ({rc['val_log_loss']:.4f}): the first fit is used alone "
            "(--set refit_check=false keeps the refit)")
    return t


@main.command()
@click.argument("name", required=False)
@json_option
def predictors(name: str | None, as_json: bool) -> None:
    """List the registered predictor backends; with NAME, its parameters and their
    defaults (what --set KEY=VALUE changes)."""
    import json as _json

    from .predictors.registry import describe_predictors, get_predictor_class

    rows = describe_predictors()
    if name is not None:
        get_predictor_class(name)  # an unknown name: one line, with the known ones
        (row,) = [r for r in rows if r["name"] == name]
        if as_json:
            print_json(row)
            return
        t = Table(title=f"{name}: {row['summary']}")
        t.add_column("parameter (--set KEY=VALUE)")
        t.add_column("default", overflow="fold")
        for key, value in row["params"].items():
            t.add_row(key, _json.dumps(value))
        out.print(t)
        return
    if as_json:
        print_json(rows)
        return
    t = Table(title="latency predictors")
    for c in ("name", "summary", "class"):
        t.add_column(c, overflow="fold")  # a class path is cut nowhere
    for r in rows:
        t.add_row(r["name"], r["summary"], r["class"])
    out.print(t)
    out.print("'nasloop predictors NAME' lists a backend's parameters.")


@main.command()
@click.option("--predictor", "-p", "path", required=True, type=click.Path(),
              help="Folder of a saved predictor (from fit-predictor --out).")
@click.argument("archs", nargs=-1)
@click.option("--all", "all_cells", is_flag=True, help="Predict all 15,625 cells.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write arch,latency_ms here.")
@click.option("--force", is_flag=True, help="Overwrite an existing --csv file.")
@json_option
def predict(path, archs, all_cells, csv_path, force, as_json) -> None:
    """Predicted latency (ms) of ARCHs (or --all) with a saved predictor.

    ARCH is an arch string such as '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|' or a
    quoted 6-tuple of op indices such as '(3,0,1,2,4,3)' (none=0, skip_connect=1,
    nor_conv_1x1=2, nor_conv_3x3=3, avg_pool_3x3=4).
    """
    import csv

    from .predictors import load_predictor
    from .space import all_archs

    if bool(archs) == bool(all_cells):
        raise click.UsageError("give ARCH arguments or --all (exactly one of them)")
    if not path.strip():
        raise click.BadParameter("is empty: give the folder of a saved predictor",
                                 param_hint="--predictor")
    cells = list(all_archs()) if all_cells else parse_archs_cli(archs)
    if csv_path:
        check_out_file(csv_path, "--csv", force=force)
    pred = load_predictor(path)
    lat = pred.predict(cells)
    rows = [{"arch": str(a), "latency_ms": float(v)} for a, v in zip(cells, lat)]
    if csv_path:
        from pathlib import Path
        Path(csv_path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        with open(Path(csv_path).expanduser(), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arch", "latency_ms"])
            w.writerows((r["arch"], f"{r['latency_ms']:.6f}") for r in rows)
        err.print(f"wrote {len(rows)} predictions to {escape(str(csv_path))}")
    if as_json:
        print_json(rows)
    elif not csv_path:
        t = Table(title=f"predicted latency ({pred.name}, device {pred.fit_info_.get('device', '?')})")
        t.add_column("arch", overflow="fold")  # the answer: never cut
        t.add_column("latency ms", justify="right")
        for r in rows[:200]:
            t.add_row(r["arch"], fmt(r["latency_ms"]))
        out.print(t)
        if len(rows) > 200:
            err.print(f"(showing 200 of {len(rows)}; use --csv FILE or --json for all)")


@main.command()
@click.option("--device", "-d", "devices_", required=True,
              help="Comma-separated device names or CSV paths.")
@data_dir_option
@click.option("--skip-bad-rows", is_flag=True,
              help="For a device CSV: use the good rows and list the bad ones as warnings.")
@click.option("--predictors", "-p", "names", default="auto,xgboost,linear,layerwise,flops",
              show_default=True, help="Comma-separated predictor names.")
@click.option("--train", default=900, show_default=True, type=click.IntRange(1),
              help="Cells the predictor is fitted on (a seeded split of the device's table).")
@click.option("--val", default=100, show_default=True, type=click.IntRange(0),
              help="Validation cells, unseen in fitting: what 'auto' chooses by and what the "
                   "GCNs early-stop on; the rest of the table is the test cells.")
@split_options
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Number of runs: split seeds 0..N-1, each with the same model seed.")
@click.option("--split-seed", default=None, type=click.IntRange(0, 2**32 - 1),
              help="Fix the split; --seeds then varies the model seed only.")
@click.option("--model-seed", default=None, type=click.IntRange(0, 2**32 - 1),
              help="Fix the model seed; --seeds then varies the split only.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a hyperparameter of every predictor that has it.")
@json_option
def evaluate(devices_, data_dir, skip_bad_rows, names, train, val, split_kind, seeds,
             split_seed, model_seed, sets, as_json) -> None:
    """Mean and std of test metrics per predictor and device over several seeds."""
    from .evaluation import Protocol, evaluate_predictors  # checks every name before a fit

    if split_seed is not None and model_seed is not None:
        raise click.UsageError("give --split-seed or --model-seed, not both")
    devs = list(dict.fromkeys(d.strip() for d in devices_.split(",") if d.strip()))
    preds = list(dict.fromkeys(p.strip() for p in names.split(",") if p.strip()))  # once each
    overrides = _overrides(sets)
    if not preds:
        raise click.BadParameter("no predictor named; e.g. -p auto,linear", param_hint="-p")
    if not devs:
        raise click.BadParameter(f"no device named in {devices_!r}; e.g. -d desktop_cpu,mobile_dsp",
                                 param_hint="-d")
    seq = tuple(range(seeds))
    tables = load_devices_cli(devs, data_dir, skip_bad_rows)
    train, val = _split_sizes(tables, train, val)
    if split_seed is not None:
        protocol = Protocol(train, val, split_kind, (split_seed,), seq)
    elif model_seed is not None:
        protocol = Protocol(train, val, split_kind, seq, (model_seed,))
    else:
        protocol = Protocol(train, val, split_kind, seq)
    from .console import progress as make_progress
    with make_progress() as bar:
        results = evaluate_predictors(tables, preds, protocol, overrides=overrides, bar=bar)
    seen = [any(run.get("seen_in_pretraining") for run in r["runs"]) for r in results]
    for r, s in zip(results, seen):
        if s:
            _warn_seen_in_pretraining(r["device"], r["predictor"])
    if as_json:
        print_json(results)
        return
    n = len(protocol.runs())
    t = Table(title=f"test metrics, mean ± std (ddof=1) over {n} run(s), {split_kind} split, "
                    f"{train} training cells")
    failures = any(r["failures"] for r in results)
    if not failures:
        t.caption = "no fit failed"
    cols = ["device / predictor", "acc_1", "acc_5", "acc_10", "spearman", "mape", "fit s",
            "pred s"] + (["failed"] if failures else [])
    for c in cols:  # one row per device, its predictors under it; a std under its mean
        t.add_column(c, justify="left" if c == cols[0] else "right", overflow="fold")
    device = None
    for r, r_seen in zip(results, seen):
        mu, sd = r["mean"], r["std"]
        if r["device"] != device:
            device = r["device"]
            t.add_row(f"[bold]{escape(device)}[/bold]", *[""] * (len(cols) - 1))

        def cell(k, nd=1):
            m, s_ = mu.get(k, float("nan")), sd.get(k, float("nan"))
            return f"{m:.{nd}f}" + ("" if s_ != s_ else f"\n±{s_:.{nd}f}")
        t.add_row(f"  {escape(r['predictor'])}" + (" (seen in pretraining)" if r_seen else ""),
                  cell("acc_1"), cell("acc_5"), cell("acc_10"),
                  cell("spearman", 3), cell("mape", 2), fmt(mu.get("fit_seconds"), 1),
                  fmt(mu.get("predict_seconds"), 3),
                  *([str(r["failures"])] if failures else []))
    out.print(t)


def _overrides(sets: tuple[str, ...]) -> dict:
    from .config import parse_sets
    return parse_sets(sets)


# ---------------------------------------------------------------- search --------------
class BudgetType(click.ParamType):
    """A latency budget with a unit: 5ms, 5 ms, 0.005s, 5000us."""

    name = "budget"

    def convert(self, value, param, ctx):
        from .units import BudgetError, parse_budget

        try:
            return parse_budget(value)
        except BudgetError as e:
            self.fail(str(e), param, ctx)


@main.command()
@click.option("--device", "-d", "devices", multiple=True,
              help="Device name, a CSV of measurements, or 'cpu'/'cuda' to measure on this "
                   "machine. Repeat it, each with its --budget, for one network that meets "
                   "every budget on its own device. Required, but with --report (read from "
                   "the study).")
@data_dir_option
@click.option("--skip-bad-rows", is_flag=True, help="For a device CSV: use the good rows only.")
@click.option("--budget", "-b", "budgets", multiple=True, type=BudgetType(),
              help="Latency budget, e.g. 5ms; one per --device, in the same order. Required, "
                   "but with --report.")
@click.option("--oracle", default=None,
              help="'true', a saved predictor folder, or a predictor name (default: auto; "
                   "transfer with --device cpu|cuda).")
@click.option("--train", default=None, type=click.IntRange(1),
              help="Measured cells a predictor oracle is fitted on [default: 900 from a table "
                   "(a small table: all but a tenth, which validates); "
                   "with --device cpu|cuda: 20 for transfer, else 200, measured now].")
@click.option("--config", default=None,
              help="Hyperparameter file for the oracle's predictor (a path or a name in configs/).")
@click.option("--objective", default="cifar10", show_default=True,
              type=click.Choice(["cifar10", "cifar100", "imagenet16"]),
              help="Whose NAS-Bench-201 test accuracy (after 200 epochs) is maximised.")
@click.option("--trials", default=100, show_default=True, type=click.IntRange(1),
              help="Total trials of the study, each one accuracy evaluation of a new network "
                   "the oracle calls feasible; a resumed study runs only the missing ones.")
@click.option("--sampler", default=None,
              type=click.Choice(["guided", "evolution", "tpe", "nsga2", "random", "gp"]),
              help="How networks are proposed [default: guided; tpe with --mode pareto].")
@click.option("--mode", default="constrained", show_default=True,
              type=click.Choice(["constrained", "pareto"]),
              help="constrained: the most accurate network under --budget; pareto: also "
                   "the front of accuracy against predicted latency among the networks the "
                   "oracle calls within --budget (a two-objective study).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Seed of the sampler (and of the oracle's split).")
@click.option("--storage", default=None,
              help="Optuna storage URL, e.g. sqlite:///study.db: a re-run with the same settings "
                   "resumes the study. SQLite serves one process; share a study between "
                   "processes with postgresql://... or mysql://...")
@click.option("--study-name", default=None,
              help="Study name inside --storage [default: nasloop]; needs --storage.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(1),
              help="At most this many finalists are checked against true latency, most "
                   "accurate first, until one meets the budget.")
@click.option("--confidence", default=None, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Feasible means within budget with this probability (e.g. 0.95): the "
                   "oracle's answers get a split-conformal margin from its validation cells "
                   "[default: none; 0.5 with --device cpu/cuda (a bias correction), from "
                   "out-of-sample predictions of the timed cells].")
@click.option("--rounds", default=None, type=click.IntRange(1),
              help="With --device cpu/cuda: at most this many searches; when no finalist "
                   "meets the budget, they are timed, the oracle is refitted with them and "
                   "the search runs again [default: 3; 1: no refit]. Only the first "
                   "search goes to --storage: a refit's oracle is another one.")
@click.option("--no-fallback", is_flag=True,
              help="With --device cpu/cuda: when no finalist meets the budget, ship nothing "
                   "(exit 1) instead of the most accurate cell measured under it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a hyperparameter of the oracle's predictor.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Where fitted oracles are cached (default $NASLOOP_CACHE or ~/.cache/nasloop).")
@click.option("--no-cache", is_flag=True, help="Refit the oracle even if a cached one exists.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for trials.csv, summary.json and search.png.")
@click.option("--force", is_flag=True,
              help="Overwrite the trials.csv, summary.json and search.png of an earlier "
                   "search in --out.")
@click.option("--objective-fn", default=None, metavar="MODULE:FUNCTION",
              help="Maximise your own function f(arch_string[, seed=]) -> float instead of the "
                   "accuracy table (e.g. a short training run); also path/to/file.py:function.")
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Start this many local worker processes on the study (needs a shared "
                   "--storage: postgresql://... or journal:PATH) and print the study's result.")
@click.option("--heartbeat", default=10, show_default=True, type=click.IntRange(1),
              help="Seconds between heartbeats of a running trial on a shared storage; a "
                   "trial silent 3x as long (its worker died) is failed and retried.")
@click.option("--report", is_flag=True,
              help="Print the result of the study in --storage as it stands; evaluate nothing.")
@click.option("--as-worker", is_flag=True, hidden=True,
              help="Internal: a worker started by --workers (prints nothing).")
@click.option("--cuda-graph", "graph", is_flag=True,
              help="With --device cuda: time every cell (fitted and finalists) as the replay "
                   "of a CUDA graph, as `measure --cuda-graph` does; eager launches at batch 1 "
                   "time Python's launch path.")
@json_option
def search(devices, data_dir, skip_bad_rows, budgets, oracle, train, config, objective, trials,
           sampler, mode, seed, storage, study_name, top, confidence, rounds, no_fallback, sets,
           cache_dir, no_cache, out_dir, force, objective_fn, workers, heartbeat, report,
           as_worker, graph, as_json) -> None:
    """Find the most accurate network under a latency budget, validated on true latency.

    The objective is NAS-Bench-201's test accuracy after 200 epochs (--objective picks the
    dataset), or your function (--objective-fn). Prints the cost: accuracy evaluations,
    oracle answers, true-latency checks. Exits 1 when no finalist truly meets the budget
    (in live mode, only when no cell timed to fit the oracle does either: see --no-fallback).
    Several processes (--workers, or commands started anywhere with the same --storage and
    --study-name) share one study: --trials is the study's total, no network is evaluated
    twice; their order is not reproducible from --seed.
    """
    from .console import progress as make_progress
    from .search import (SearchConfig, check_budget, check_study, get_oracle, make_sampler,
                         run_search, study_settings)
    from .search.oracles import DEFAULT_ORACLE, oracle_label
    from .search.report import front_table, result_table, write_outputs
    from .search.samplers import default_sampler

    if report and storage and not set(devices) & {"cpu", "cuda"}:  # (live: refused below)
        # what the study was run with, unless given again
        devices, budgets, oracle, objective, mode, sampler = _report_settings(
            storage, study_name, devices, budgets, oracle, objective, mode, sampler)
    for name, given in (("--device", devices), ("--budget", budgets)):
        if not given:
            raise click.UsageError(f"Missing option '{name}'" + (
                "" if report else " (only --report reads it from the study in --storage)"))
    if len(devices) != len(budgets):
        raise click.UsageError(f"{len(devices)} --device but {len(budgets)} --budget: give one "
                               "--budget per --device, in the same order")
    device, budget = devices[0], budgets[0]
    several = len(devices) > 1
    if several:
        live = [d for d in devices if d in ("cpu", "cuda")]
        if live:
            raise click.UsageError(f"--device {live[0]} with other devices: several targets need "
                                   "a table each; time this machine first with `nasloop measure "
                                   "--all --out mine.csv` and give --device mine.csv")
        if workers or report or as_worker:
            raise click.UsageError("--workers and --report serve one --device; for several "
                                   "targets run one search (its --storage resumes it)")
        if oracle and oracle != "true" and os.path.exists(oracle):
            raise click.UsageError(f"--oracle {oracle}: a saved predictor answers for the one "
                                   "device it was fitted on; with several --device give a "
                                   "predictor name (fitted on each device) or 'true'")
    if oracle is not None and not oracle.strip():
        raise click.BadParameter("'' is empty: give 'true', a saved predictor folder or a "
                                 "predictor name, or leave --oracle out for the default",
                                 param_hint="--oracle")
    if storage is not None and not storage.strip():
        raise click.BadParameter("'' is empty: give a URL such as sqlite:///study.db, or "
                                 "leave --storage out for a study in memory",
                                 param_hint="--storage")
    if (oracle == "true" or (oracle and os.path.exists(oracle))) and (sets or config):
        what = "--set " + " ".join(sets) if sets else f"--config {config}"
        raise click.UsageError(
            f"{what}: --oracle true reads the table and has no predictor parameters to set; "
            "leave it out or name a predictor" if oracle == "true" else
            f"{what}: --oracle {oracle} is a saved predictor, used as it was fitted; leave "
            "it out, or name a backend to fit")
    if oracle == "true" and confidence is not None:
        raise click.UsageError(f"--confidence {confidence:g}: --oracle true reads measured "
                               "latencies, so there is no prediction error to cover; leave "
                               "it out, or name a predictor as --oracle")
    if oracle and oracle != "true" and os.path.exists(oracle) and confidence is not None:
        raise click.UsageError(f"--confidence {confidence:g} needs held-out cells to calibrate "
                               f"on, and the saved predictor {oracle} keeps none; leave it out, "
                               "or give a predictor name as --oracle (fitted here with cells "
                               "held out)")
    # an unwritable --out fails before the search; its files are added, nothing deleted
    check_out_folder(out_dir, force=True, replaces=False)
    if force and not out_dir:
        raise click.UsageError("--force overwrites the files of an earlier search in --out; "
                               "give --out DIR, or leave --force out")
    if out_dir and not force and not as_worker and not _resumes(storage, study_name):
        from .search.report import OUTPUT_FILES
        earlier = [n for n in OUTPUT_FILES if os.path.exists(os.path.join(out_dir, n))]
        if earlier:
            raise click.BadParameter(f"{out_dir} holds an earlier search's "
                                     f"{', '.join(earlier)}; pass --force to overwrite them "
                                     "or choose another folder", param_hint="--out")
    if oracle and os.path.exists(oracle) and not os.path.dirname(oracle):
        from .predictors import list_predictors
        if oracle in list_predictors() or oracle == "true":
            raise click.BadParameter(
                f"{oracle!r} is both a {'predictor name' if oracle != 'true' else 'keyword'} "
                f"and a folder here; write ./{oracle} for the folder, or run elsewhere",
                param_hint="--oracle")
    if graph and device != "cuda":
        raise click.UsageError(f"--cuda-graph times this machine's GPU and needs --device cuda, "
                               f"got --device {device}; leave --cuda-graph out")
    if no_fallback and device not in ("cpu", "cuda"):
        raise click.UsageError("--no-fallback: only the live mode (--device cpu/cuda) falls "
                               "back to a measured cell; with a table, leave it out")
    if rounds is not None and device not in ("cpu", "cuda"):
        raise click.UsageError(f"--rounds {rounds}: refits time new cells, so they serve "
                               "--device cpu/cuda only; with a table, leave it out")
    if no_fallback and oracle and oracle != "true" and os.path.exists(oracle):
        raise click.UsageError(f"--no-fallback: with the saved predictor {oracle} no cell is "
                               "timed to fit an oracle, so there is nothing to fall back to; "
                               "leave it out")
    if rounds is not None and oracle and oracle != "true" and os.path.exists(oracle):
        raise click.UsageError(f"--rounds {rounds}: the saved predictor {oracle} is used as "
                               "it is, never refitted; give a predictor name, or leave "
                               "--rounds out")
    if device in ("cpu", "cuda") and oracle is None:
        from .workflow.live import default_live_oracle
        oracle = default_live_oracle()  # transfer from 20 cells when a model ships
    oracle = oracle or DEFAULT_ORACLE
    sampler = sampler or default_sampler(mode)
    make_sampler(sampler, seed, mode)  # --sampler guided --mode pareto fails at once
    params = {}
    if oracle != "true" and not os.path.exists(oracle):
        params = predictor_params(oracle, config, sets)
    check_study(storage, study_name)  # a bad URL, or a name without storage, fails at once
    from .search.workers import check_worker_options
    check_worker_options(storage, workers, report, device)
    if report:  # a report of no study fails at once, creating nothing
        check_study(storage, study_name, must_exist=True)
    user = None
    if objective_fn:
        from .search.objective import load_objective
        user = load_objective(objective_fn, seed)  # a typo fails before anything is fitted
        objective = user.label
    if device in ("cpu", "cuda"):
        if skip_bad_rows or no_cache:
            raise click.UsageError(
                "--skip-bad-rows reads a device CSV, and --device cpu|cuda has none; leave it out"
                if skip_bad_rows else
                "--no-cache: the live mode keeps its timings in --cache-dir as a table it "
                "resumes; give a new --cache-dir for fresh timings")
        given = click.get_current_context().get_parameter_source("objective")
        if (given is click.core.ParameterSource.COMMANDLINE and not objective_fn
                and not (data_dir or os.environ.get("NASLOOP_DATA"))):
            raise click.UsageError(f"--objective {objective} needs the accuracy table "
                                   "(nats/nats_bench.csv): pass --data-dir DIR or set "
                                   "NASLOOP_DATA, or leave --objective out to search by "
                                   "synflow, a data-free proxy")
        if device == "cuda" and not graph and __import__("torch").cuda.is_available():
            err.print("[yellow]note:[/yellow] eager launches at batch 1 time Python's launch "
                      "path as much as the GPU; --cuda-graph times the GPU's own work",
                      highlight=False)
        from .search.adaptive import AdaptiveConfig
        from .workflow.live import live_search
        adaptive = AdaptiveConfig(**{k: v for k, v in (("confidence", confidence),
                                                       ("rounds", rounds)) if v is not None},
                                  fallback=not no_fallback)
        res = live_search(device, budget, SearchConfig(
                              objective=objective, trials=trials, sampler=sampler, mode=mode,
                              seed=seed, top=top, storage=storage, study_name=study_name,
                              heartbeat=heartbeat),
                          oracle=oracle, train=train, params=params, data_dir=data_dir,
                          cache_dir=cache_dir, objective_fn=user, adaptive=adaptive,
                          graph=graph)
    elif several:
        res = _search_targets(devices, budgets, data_dir, skip_bad_rows, oracle, train, seed,
                              params, cache_dir, no_cache, user, objective, sampler, mode,
                              SearchConfig(objective=objective, trials=trials, sampler=sampler,
                                           mode=mode, seed=seed, top=top, confidence=confidence,
                                           storage=storage, study_name=study_name,
                                           heartbeat=heartbeat))
    else:
        table = load_device_cli(device, data_dir, skip_bad_rows)
        acc, objective = _objective_of(user, objective, data_dir, chosen=bool(report))
        # an impossible budget or a resume with other settings fails before the oracle is fitted
        check_budget(table, budget)
        check_study(storage, study_name, study_settings(budget, table.name, oracle_label(oracle),
                                                        objective, mode, sampler))
        with make_progress(transient=True, disable=as_worker) as bar:
            orc = get_oracle(oracle, table, train=train, seed=seed, params=params,
                             cache_dir=cache_dir, use_cache=not no_cache,
                             progress=_EpochBar(bar, f"fit oracle {oracle}"))
            task = bar.add_task("search", total=trials, info="")
            cfg = SearchConfig(objective=objective, trials=trials, sampler=sampler, mode=mode,
                               seed=seed, top=top, confidence=confidence, storage=storage,
                               study_name=study_name, heartbeat=heartbeat, report_only=report)
            if workers:  # the oracle is fitted (cached) once, here; the workers load it
                from .search.workers import start_workers
                start_workers(workers, dict(
                    device=device, data_dir=data_dir, skip_bad_rows=skip_bad_rows,
                    budget=budget, oracle=oracle, train=train, config=config,
                    # synflow: each worker finds it has no accuracy table, as here
                    objective=None if user or objective == "synflow" else objective,
                    objective_fn=objective_fn,
                    trials=trials, sampler=sampler, mode=mode, seed=seed, storage=storage,
                    study_name=study_name, top=top, confidence=confidence, sets=sets,
                    cache_dir=cache_dir, heartbeat=heartbeat),
                    on_progress=lambda n: bar.update(task, completed=n))
            res = run_search(table, budget, orc, acc, cfg,
                             on_trial=lambda n, tot, info: bar.update(task, completed=n))
    if as_worker:  # the process that started it prints the study's result
        sys.exit(130 if res.interrupted else 0)
    if out_dir:
        write_outputs(res, out_dir)
    if as_json:
        print_json(res.to_dict())
    else:
        out.print(result_table(res))
        front = front_table(res)
        if front is not None:
            out.print(front)
        if res.message:
            err.print(f"[yellow]{escape(res.message)}[/yellow]")
        if res.cells_measured is not None:
            err.print(f"timed {res.cells_measured} cells here to fit the oracle; the whole job "
                      f"took {res.seconds:.0f} s")
        if out_dir:
            err.print(f"wrote trials.csv, summary.json and search.png to {escape(str(out_dir))}")
    if res.interrupted:
        err.print(f"interrupted: {res.trials} accuracy evaluation(s) kept"
                  + (f" in {storage}" if storage else ""))
        sys.exit(130)
    if res.best is None:
        sys.exit(1)


def _objective_of(user, objective: str, data_dir: str | None, chosen: bool = False):
    """``(accuracy, objective label)`` of a search on device tables: the user's function,
    else the accuracy table; without a data directory and with no objective chosen (on the
    command line, or by the stored study a report reads: ``chosen``), synflow, as in the
    live mode (a user's board CSV on a machine without the public data). A data directory
    without its accuracy table is an error that names the file."""
    from .data import load_accuracy, resolve_data_dir
    from .measure.zero_cost import synflow_scores

    if user is not None:
        return user, objective
    if objective == "synflow":  # a study searched by synflow, reported or resumed
        return synflow_scores, objective
    given = chosen or (click.get_current_context().get_parameter_source("objective")
                       is click.core.ParameterSource.COMMANDLINE)
    if resolve_data_dir(data_dir, required=False) is not None or given:
        return load_accuracy(data_dir, required=True), objective
    err.print("[yellow]no accuracy table (no data directory): the objective is synflow, a "
              "data-free zero-cost proxy of accuracy (log10 score; higher is better); pass "
              "--data-dir DIR or set NASLOOP_DATA for CIFAR-10 accuracy[/yellow]",
              highlight=False, soft_wrap=True)
    return synflow_scores, "synflow"


def _search_targets(devices, budgets, data_dir, skip_bad_rows, oracle, train, seed, params,
                    cache_dir, no_cache, user, objective, sampler, mode, cfg):
    """Several --device/--budget pairs: one oracle per device, one joint search."""
    from .console import progress as make_progress
    from .search import check_study, get_oracle, study_settings
    from .search.multi import Target, check_targets, run_multi_search, targets_label
    from .search.oracles import oracle_label

    tables = load_devices_cli(list(devices), data_dir, skip_bad_rows)
    acc, objective = _objective_of(user, objective, data_dir)
    cfg = dataclasses.replace(cfg, objective=objective)
    # impossible budgets or a resume with other settings fail before any oracle is fitted
    pairs = list(zip(tables, budgets))
    check_targets(pairs)
    label = targets_label(pairs)
    check_study(cfg.storage, cfg.study_name,
                study_settings(1.0, label, oracle_label(oracle), objective, mode, sampler))
    with make_progress(transient=True) as bar:
        targets = [Target(t, b, get_oracle(oracle, t, train=train, seed=seed,
                                           params=params, cache_dir=cache_dir,
                                           use_cache=not no_cache,
                                           progress=_EpochBar(bar, f"fit oracle {oracle} "
                                                                   f"on {t.name}")))
                   for t, b in zip(tables, budgets)]
        task = bar.add_task("search", total=cfg.trials, info="")
        return run_multi_search(targets, acc, cfg,
                                on_trial=lambda n, tot, info: bar.update(task, completed=n))


# ---------------------------------------------------------------- measuring -----------
@main.command()
@click.option("--device", "-d", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="Time on this machine's CPU, or its first CUDA GPU.")
@click.option("--cells", "n_cells", default=None, type=click.IntRange(1),
              help="Measure N seeded random connected cells.")
@click.option("--all", "all_cells", is_flag=True,
              help="Measure the whole space in a --seed shuffled order (so that slow drift of "
                   "the machine does not line up with the cell structure): the 6,466 distinct "
                   "networks with --network deployable (a table fills each cell from its "
                   "class), all 15,625 cells with --network reference.")
@click.option("--cells-from", type=click.Path(exists=True, dir_okay=False),
              help="A file of arch strings (one a line, or a CSV with an 'arch' column).")
@click.option("--cells-for", type=click.Choice(["transfer"]), default=None,
              help="With --cells K: the K cells the pretrained transfer model finds most "
                   "informative, instead of random ones (then fit-predictor -p transfer).")
@click.option("--pretrained", default=None, type=click.Path(dir_okay=False),
              help="With --cells-for transfer: a model from 'nasloop pretrain' [default: shipped].")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1),
              help="Images per forward pass.")
@click.option("--network", default="deployable", show_default=True,
              type=click.Choice(["deployable", "reference"]),
              help="deployable: only the ops on input-output paths are built (what a compiler "
                   "ships; isomorphic cells are one network); reference: NAS-Bench-201's "
                   "network, every edge executed.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1),
              help="Interleaved rounds over each block of cells, each in a shuffled order.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="Untimed forward passes before each cell's timed runs, every round.")
@click.option("--repeats", default=7, show_default=True, type=click.IntRange(1),
              help="Timed forward passes per cell per round.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1),
              help="torch CPU threads, pinned while timing (restored after).")
@click.option("--statistic", default="min", show_default=True,
              type=click.Choice(["median", "p25", "min"]),
              help="The latency of a cell: this statistic over all its timed runs (the "
                   "minimum is the least disturbed by other processes).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help="Seed of the --cells sample and of the --all order.")
@click.option("--cuda-graph", "graph", is_flag=True,
              help="With --device cuda: time the replay of a CUDA graph of the forward pass "
                   "(the GPU's own work, as TensorRT or torch.compile would run it) instead of "
                   "eager launches, which at batch 1 measure Python's launch path.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="CSV to write (re-running with the same file resumes).")
@click.option("--repeat-check", is_flag=True,
              help="Measure the cells a second time in a separate run (into OUT.run2.csv) "
                   "and report the run-to-run difference: the noise floor.")
@json_option
def measure(device, n_cells, all_cells, cells_from, cells_for, pretrained, batch, network,
            rounds, warmup, repeats,
            threads, statistic, seed, graph, out_path, repeat_check, as_json) -> None:
    """Time cells' networks on this machine; the CSV it writes is a device.

    The protocol (network form, rounds, runs, threads) is recorded in the CSV's .json
    sidecar; resuming with other options is refused, so a table never mixes protocols.
    ``--rounds 1 --repeats 50 --warmup 10 --statistic median --network reference`` is
    the protocol of tables measured before protocols existed.
    """
    import numpy as np

    from .console import progress as make_progress
    from .space import sample_cells
    from .measure.timing import (TimingProtocol, _device, check_graph, check_out_csv,
                                 measure_to_csv)
    from .space import all_archs, arch_index, canonical_representatives

    if sum(bool(x) for x in (n_cells, all_cells, cells_from)) != 1:
        raise click.UsageError("choose exactly one of --cells N, --all, --cells-from FILE")
    if pretrained and not cells_for:
        raise click.UsageError(f"--pretrained {pretrained} chooses the cells of --cells-for "
                               "transfer; add --cells-for transfer, or leave it out")
    if cells_for and not n_cells:
        raise click.UsageError("--cells-for transfer needs --cells K (how many cells to time)")
    protocol = TimingProtocol(network=network, batch=batch, rounds=rounds, repeats=repeats,
                              warmup=warmup, threads=threads, statistic=statistic, seed=seed,
                              graph=graph)
    check_graph(protocol, device)  # no CUDA, or an unwritable --out: one line before timing
    _device(device)
    check_out_csv(out_path)
    if all_cells:
        every = list(all_archs())
        if network == "deployable":  # isomorphic cells are one network: time each once
            every = [every[i] for i in np.unique(canonical_representatives())]
        cells = [every[i] for i in np.random.default_rng(seed).permutation(len(every))]
    elif n_cells and cells_for:
        from .transfer import informative_cells
        cells = informative_cells(n_cells, pretrained=pretrained)
    elif n_cells:
        cells = sample_cells(n_cells, seed)
        if len(cells) < n_cells:
            raise click.BadParameter(f"{n_cells} is more than the {len(cells)} connected cells of "
                                     "the space; use --all to measure them all",
                                     param_hint="--cells")
    else:
        import csv as _csv
        try:
            with open(cells_from, encoding="utf-8-sig") as f:
                text = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise click.BadParameter(f"cannot read {cells_from} as text ({e}); give a file of "
                                     "arch strings, one a line", param_hint="--cells-from") from None
        header = [h.strip() for h in next(_csv.reader(text[:1]), [])]
        if "arch" in header:  # a table with an arch column (measure's)
            col = header.index("arch")
            raw = [(n, row[col].strip() if len(row) > col else "")
                   for n, row in enumerate(_csv.reader(text), start=1) if n > 1]
        else:
            raw = [(n, ln.strip()) for n, ln in enumerate(text, start=1)]
        raw = [(n, a) for n, a in raw if a]
        if not raw:
            raise click.BadParameter(f"{cells_from} holds no arch strings; give a file of "
                                     "arch strings, one a line", param_hint="--cells-from")
        cells = []
        for n, a in raw:  # the file's own line numbers, as the device loader gives them
            try:
                cells.append(Arch.coerce(a))
            except NasloopError as e:
                msg = str(e) if a in str(e) else f"{a!r}: {e}"
                raise click.BadParameter(f"{cells_from} line {n}: {msg}",
                                         param_hint="--cells-from") from None
    from pathlib import Path

    runs = [Path(out_path)]
    if repeat_check:
        runs.append(Path(out_path).with_suffix(".run2.csv"))
    summary = []
    for i, path in enumerate(runs):
        done = 0
        label = f"measure on {device}" + (f" (run {i + 1} of 2)" if repeat_check else "")
        try:
            with make_progress() as bar:
                task = bar.add_task(label, total=len(cells), info="")

                def on_cell(n, tot, row):
                    bar.update(task, completed=n,
                               info=f"{row['latency_ms']:.2f} ms" if row else "")
                done = measure_to_csv(cells, path, device, protocol=protocol, on_cell=on_cell)
        except KeyboardInterrupt:
            err.print(f"interrupted: rows measured so far are in {escape(str(path))}; re-run the same "
                      "command to resume")
            sys.exit(130)
        err.print(f"measured {done} new cell(s); {escape(str(path))} is usable as --device "
                  f"{escape(str(path))}")
        summary.append({"out": str(path), "device": device, "cells": len(cells),
                        "measured_now": done})
    if as_json and not repeat_check:
        print_json(summary[0])
    if repeat_check:
        from .data.tables import load_csv_table
        from .measure.noise import run_to_run

        tables = [load_csv_table(p) for p in runs]
        for t in tables:  # only the cells of this command, even if the files hold more
            keep = np.zeros_like(t.measured)
            keep[[arch_index(a) for a in cells]] = True
            t.latency_ms[~keep] = np.nan
        noise = run_to_run(*tables)
        noise.update(first=str(runs[0]), second=str(runs[1]))
        if as_json:
            print_json(noise)
        else:
            t = Table(title=f"run-to-run noise on {device} ({noise['cells']} cells)")
            for col in ("median %", "p90 %", "max %", "within 1 %", "within 5 %", "within 10 %"):
                t.add_column(col, justify="right")
            t.add_row(*(fmt(noise[k], 2) for k in ("median_pct", "p90_pct", "max_pct")),
                      *(fmt(noise[k], 1) for k in ("within_1", "within_5", "within_10")))
            out.print(t)


# ---------------------------------------------------------------- few-shot transfer ---
@main.command()
@data_dir_option
@click.option("--exclude", default="", help="Comma-separated table names to leave out.")
@click.option("--rank", default=None, type=click.IntRange(1, 26),
              help="Cell factors kept from the SVD [default: the transfer model's].")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The .npz to write (loadable without executing code).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@json_option
def pretrain(data_dir, exclude, rank, out_path, force, as_json) -> None:
    """Pretrain the few-shot 'transfer' predictor on every latency table (minus --exclude)."""
    from .transfer.pretrain import DEFAULT_RANK, pretrain as run_pretrain, save_pretrained

    if not out_path.endswith(".npz"):
        raise click.BadParameter(f"{out_path}: give a path ending in .npz", param_hint="--out")
    check_out_file(out_path, force=force)  # before minutes of pretraining, not after
    pre = run_pretrain(data_dir, exclude=exclude.split(","), rank=rank or DEFAULT_RANK,
                       log=lambda m: err.print(m, highlight=False))
    path = save_pretrained(pre, out_path)
    res = {**pre.meta, "out": str(path), "bytes": path.stat().st_size}
    if as_json:
        print_json(res)
        return
    t = Table(title=f"transfer model pretrained on {len(pre.meta['sources'])} tables "
                    f"(rank {pre.meta['rank']})")
    for c in ("table", "file", "cells", "licence"):
        t.add_column(c, justify="right" if c == "cells" else "left")
    for src in pre.meta["sources"]:
        t.add_row(src["name"], src["file"], str(src["cells"]), src["licence"])
    out.print(t)
    out.print(f"wrote {path} ({res['bytes'] / 1e6:.2f} MB); use it with "
              f"--set pretrained={path}")
