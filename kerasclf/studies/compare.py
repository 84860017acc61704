"""`kerasclf compare`: a table and overlaid curves over run directories.

The table has one row per run: the config keys whose values differ between the runs, the
model, epochs, best validation accuracy (epoch), test accuracy, weight layers / trainable,
trainable parameters, training wall time, the first epoch's seconds (it includes compiling
the model) and the steady seconds per epoch (the median of the later epochs), plus a
random-classifier row (1 / classes).

Runs are ranked by the validation metric they monitored (the one that chose their best
epoch): choosing a run by its test accuracy would be model selection on the test set, so
test accuracy is shown and never ranks. Runs without a validation score are not ranked, and
the table says so. Runs trained on different data (another source, class subset, image
count or split) are not comparable: each data set gets its own table, ranking and best run,
and compare warns. Failed and unfinished runs are listed last with their state (and error).
"""

import csv
import json
import os
import statistics
import warnings
from pathlib import Path

import numpy as np

from kerasclf.plotting import read_history
from kerasclf.studies.compare_figures import plot_overlaid_curves
from kerasclf.studies.hparams import write_hparams
from kerasclf.studies.runs import find_runs, flatten, load_run, run_labels

# Keys that differ between runs without being a difference in the experiment.
IGNORED_KEYS = {"train.log_dir", "train.run_name", "data.data_dir", "train.verbose"}
MISSING = "—"
SKIPPED_TEXT = "Not a run or study directory (no metrics.json, config.yaml or error.txt in it or one level down), skipped"

# (CSV column, markdown header) of the fixed columns, in order.
FIXED_COLUMNS = (
    ("model", "model"),
    ("epochs", "epochs"),
    ("best_val_accuracy", "best val acc (epoch)"),
    ("test_accuracy", "test acc"),
    ("weight_layers", "weight layers / trainable"),
    ("params_trainable", "trainable params"),
    ("wall_seconds", "train wall s"),
    ("first_epoch_seconds", "first epoch s"),
    ("steady_seconds_per_epoch", "steady s / epoch"),
)
# The data.* keys that make two runs' validation and test images different sets.
DATA_KEYS = ("source", "classes", "limit_per_class", "val_fraction", "test_fraction", "split_seed",
             "svhn_extra", "image_size", "resize")
DATA_DIFFERS_TEXT = ("These runs were trained and scored on different data, so their accuracies are not "
                     "comparable: one table, ranking and best run per data set")


def varying_keys(configs):
    """Dotted keys whose value is not the same in every config (a missing key counts as a value)."""
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f} - IGNORED_KEYS - {"model.name"})
    marker = object()
    return [k for k in keys if len({_hashable(f.get(k, marker)) for f in flat}) > 1]


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def data_spec(config):
    """The data set a run was trained and scored on, as (key, value) pairs of DATA_KEYS."""
    data = (config or {}).get("data") or {}
    return tuple((k, _hashable(data.get(k))) for k in DATA_KEYS)


def _data_labels(specs):
    """A short label per distinct data spec: the source plus the keys that differ between specs."""
    unique = list(dict.fromkeys(specs))
    differing = [k for i, k in enumerate(DATA_KEYS) if k == "source" or len({s[i][1] for s in unique}) > 1]
    return {s: ", ".join(f"data.{k}={dict(s)[k]}" for k in differing) for s in unique}


def _monitored_value(run, monitor):
    """The run's `monitor` value at its best epoch (history.csv row best_epoch), or None."""
    if monitor == "val_accuracy":
        return run.metrics.get("best_val_accuracy")
    best = run.metrics.get("best_epoch")
    if not best or not run.history_csv:
        return None
    column = read_history(run.history_csv).get(monitor)
    if column is None or len(column) < best or np.isnan(column[best - 1]):  # NaN: no value that epoch
        return None
    return float(column[best - 1])


def ranking(runs):
    """(key, maximise, text): what ranks these finished runs. Never a test metric.

    The validation metric every run monitored when they agree (val_accuracy or val_loss at
    their best epoch); else best validation accuracy; key None when no run has a validation score.
    """
    monitors = {r.metrics.get("monitor") for r in runs}
    monitor = monitors.pop() if len(monitors) == 1 else None
    lower_is_better = bool(monitor) and monitor.startswith("val_") and "loss" in monitor
    if lower_is_better and any(_monitored_value(r, monitor) is not None for r in runs):
        return ("monitored", False,
                    f"ranked by {monitor} at each run's best epoch, the validation metric the runs monitored (lower is better)")
    if any(r.metrics.get("best_val_accuracy") is not None for r in runs):
        why = "the validation metric the runs monitored" if monitor == "val_accuracy" else "validation accuracy at each run's best epoch"
        return "best_val_accuracy", True, f"ranked by best validation accuracy ({why})"
    return None, True, ("not ranked: no run has a validation score (no validation split), and ranking by test "
                        "accuracy would choose a model on the test set; rows are in the order given, no run is marked best")


def build_table(runs):
    """(keys, groups, rows): rows are dicts with the CSV columns plus 'kind' (run | random);
    groups is [(data label, ranking text)] in the order the rows show them."""
    keys = varying_keys([r.config for r in runs])
    labels = run_labels([r.path for r in runs])
    specs = [data_spec(r.config) for r in runs]
    data_labels = _data_labels(specs)
    rows = []
    for run, label, spec in zip(runs, labels, specs):
        flat, m = flatten(run.config), run.metrics
        row = {"kind": "run", "run": label, "state": run.state, "error": run.error, "data": data_labels[spec]}
        row.update({k: flat.get(k) for k in keys})
        row.update({
            "model": m.get("model") or flat.get("model.name"),
            "epochs": m.get("epochs_run"),
            "monitor": m.get("monitor"),
            "best_val_accuracy": m.get("best_val_accuracy"),
            "best_epoch": m.get("best_epoch"),
            "test_accuracy": m.get("test_accuracy"),
            "weight_layers": m.get("weight_layers"),
            "trainable_weight_layers": m.get("trainable_weight_layers"),
            "params_trainable": m.get("params_trainable"),
            "wall_seconds": m.get("wall_seconds"),
            "first_epoch_seconds": m.get("first_epoch_seconds"),
            "steady_seconds_per_epoch": m.get("steady_seconds_per_epoch"),
            "num_classes": m.get("num_classes") or len(m.get("class_names") or []) or None,
            "_run": run,
        })
        rows.append(row)
    groups, ordered = [], []
    for label in dict.fromkeys(data_labels[s] for s in specs):
        group = [r for r in rows if r["data"] == label]
        text, group_rows = _rank_group(group)
        groups.append((label, text))
        ordered += group_rows
    if len(groups) > 1:
        warnings.warn(f"{DATA_DIFFERS_TEXT}: " + "; ".join(g for g, _ in groups), stacklevel=3)
    for r in ordered:
        r.pop("_run", None)
    return keys, groups, ordered


def _rank_group(rows):
    """(ranking text, rows): the finished runs ranked, random rows, then failed/unfinished runs."""
    finished = [r for r in rows if r["state"] == "finished"]
    key, maximise, text = ranking([r["_run"] for r in finished])
    for r in finished:
        r["ranked_by"] = key and ("best_val_accuracy" if key == "best_val_accuracy" else r["monitor"])
        r["val_score"] = None if key is None else (
            r["best_val_accuracy"] if key == "best_val_accuracy" else _monitored_value(r["_run"], r["monitor"]))
    ranked = [r for r in finished if r["val_score"] is not None]
    ranked.sort(key=lambda r: -r["val_score"] if maximise else r["val_score"])
    unranked = [r for r in finished if r["val_score"] is None]
    randoms = [{
        "kind": "random", "run": f"random classifier (1/{classes})", "state": "", "error": "", "data": rows[0]["data"],
        "best_val_accuracy": 1 / classes, "test_accuracy": 1 / classes, "num_classes": classes, "val_score": None,
    } for classes in sorted({r["num_classes"] for r in finished if r["num_classes"]})]
    scored = list(ranked)
    if key == "best_val_accuracy":  # the random row sits where its accuracy ranks it
        for random in randoms:
            at = next((i for i, r in enumerate(scored) if r["val_score"] is not None and r["val_score"] < random["best_val_accuracy"]), len(scored))
            scored.insert(at, random)
    else:
        scored += randoms
    rank = 0
    for r in rows + randoms:
        r["best"] = bool(ranked) and r is ranked[0]
        r.setdefault("rank", "")
    for r in scored:
        if r["kind"] == "run":
            rank += 1
            r["rank"] = rank
    if unranked and key is not None:
        text += f"; {len(unranked)} finished run(s) without a validation score are listed unranked"
    rest = [r for r in rows if r["state"] != "finished"]
    return text, scored + unranked + rest


def write_comparison(run_dirs, out_dir, curves=True, hparams=True):
    """comparison.md / comparison.csv (+ compare_*.png, hparams/) in out_dir; returns their paths."""
    runs = [load_run(p) for p in run_dirs]
    keys, groups, rows = build_table(runs)
    seeds = seed_groups(runs, keys)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": _write_csv(out / "comparison.csv", keys, rows)}
    pngs = []
    if curves:
        pngs = plot_overlaid_curves(runs, run_labels([r.path for r in runs]), out)
    if hparams:
        paths["hparams"] = write_hparams(runs, run_labels([r.path for r in runs]), keys, out / "hparams")
    paths["markdown"] = _write_markdown(out / "comparison.md", keys, groups, rows, pngs, out, seeds)
    if seeds:
        with open(out / "comparison_seeds.csv", "w", newline="") as f:
            writer = csv.writer(f)
            columns = ["setting", "runs", "seeds", "val_mean", "val_std", "val_n", "test_mean", "test_std", "test_n"]
            writer.writerow(columns)
            for g in seeds:
                writer.writerow(["" if g[c] is None else _csv_value(g[c]) for c in columns])
        paths["seeds_csv"] = str(out / "comparison_seeds.csv")
    paths["figures"] = pngs
    return paths


def compare(patterns, out_dir=None, **kwargs):
    """`kerasclf compare`: run directories (paths, globs, study directories) -> comparison files."""
    run_dirs, skipped = find_runs(patterns)
    if skipped:
        warnings.warn(f"{SKIPPED_TEXT}: {', '.join(skipped)}", stacklevel=2)
    if out_dir is None:
        parents = {p.parent for p in run_dirs}
        out_dir = parents.pop() if len(parents) == 1 else Path(os.path.commonpath(run_dirs))
    return {**write_comparison(run_dirs, out_dir, **kwargs), "skipped": skipped}


def seed_groups(runs, keys):
    """Finished runs that differ only by `seed`, as [{"setting", "runs", "seeds", "val_mean",
    "val_std", "test_mean", "test_std"}] (std: sample standard deviation, n - 1), ranked by the
    mean validation accuracy; groups of one run are left out."""
    setting_keys = [k for k in keys if k != "seed"]
    groups = {}
    for run in runs:
        if run.state != "finished":
            continue
        flat = flatten(run.config)
        ident = json.dumps({k: v for k, v in flat.items() if k != "seed" and k not in IGNORED_KEYS},
                           sort_keys=True, default=str)
        groups.setdefault(ident, []).append((run, flat))
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        flat = members[0][1]
        row = {"setting": ", ".join(f"{k}={_cell(flat.get(k))}" for k in setting_keys) or "(the same config)",
               "runs": len(members), "seeds": sorted(f.get("seed") for _, f in members)}
        for name, key in (("val", "best_val_accuracy"), ("test", "test_accuracy")):
            values = [r.metrics.get(key) for r, _ in members if r.metrics.get(key) is not None]
            row[f"{name}_n"] = len(values)
            row[f"{name}_mean"] = statistics.fmean(values) if values else None
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(row)
    out.sort(key=lambda r: -(r["val_mean"] if r["val_mean"] is not None else -1))
    return out


def _mean_std(mean, std):
    if mean is None:
        return MISSING
    return f"{100 * mean:.2f}%" + ("" if std is None else f" ± {100 * std:.2f}")


def _seed_lines(groups):
    if not groups:
        return []
    lines = ["## Over seeds", "",
             ("Runs whose configs differ only by `seed`: mean ± sample standard deviation over the seeds, "
              "ranked by the mean validation accuracy (test shown, not ranked on)."), "",
             "| setting | runs | seeds | best val acc | test acc |", "|---|---|---|---|---|"]
    lines += [f"| {g['setting'].replace('|', '&#124;')} | {g['runs']} | {', '.join(map(str, g['seeds']))} | "
              f"{_mean_std(g['val_mean'], g['val_std'])} | {_mean_std(g['test_mean'], g['test_std'])} |" for g in groups]
    return lines + [""]


def _write_csv(path, keys, rows):
    columns = ["data", "rank", "best", "run", *keys, "model", "epochs", "ranked_by", "val_score", "best_val_accuracy",
               "best_epoch", "test_accuracy", "weight_layers", "trainable_weight_layers", "params_trainable",
               "wall_seconds", "first_epoch_seconds", "steady_seconds_per_epoch", "num_classes", "state", "error"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            values = {**row, "best": int(row["best"])}
            writer.writerow(["" if values.get(c) is None else _csv_value(values.get(c)) for c in columns])
    return str(path)


def _csv_value(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _percent(value):
    return MISSING if value is None else f"{100 * value:.2f}%"


def _seconds(value):
    return MISSING if value is None else f"{value:.1f}"


def _cell(value):
    if value is None:
        return MISSING
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return str(value).replace("|", "&#124;")


def _markdown_row(row, keys):
    if row["kind"] == "random":
        cells = [f"*{row['run']}*", *[""] * len(keys), "", "", _percent(row["best_val_accuracy"]),
                 _percent(row["test_accuracy"]), "", "", "", "", ""]
        return "| " + " | ".join(cells) + " |"
    val = _percent(row["best_val_accuracy"])
    if row["best_epoch"] is not None and row["best_val_accuracy"] is not None:
        val += f" ({row['best_epoch']})"
    layers = MISSING if row["weight_layers"] is None else f"{row['weight_layers']} / {row['trainable_weight_layers']}"
    params = MISSING if row["params_trainable"] is None else f"{row['params_trainable']:,}"
    name = row["run"]
    if row["state"] != "finished":
        name += f" ({row['state']}{': ' + row['error'] if row['error'] else ''})"
    cells = [
        f"**{_cell(name)}** (best)" if row["best"] else _cell(name),
        *[_cell(row.get(k)) for k in keys],
        _cell(row["model"]), _cell(row["epochs"]), val, _percent(row["test_accuracy"]), layers, params,
        _seconds(row["wall_seconds"]), _seconds(row["first_epoch_seconds"]), _seconds(row["steady_seconds_per_epoch"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _write_markdown(path, keys, groups, rows, pngs, out, seeds=()):
    headers = ["run", *keys, *(h for _, h in FIXED_COLUMNS)]
    lines = [
        "# Run comparison",
        "",
        (f"{sum(r['kind'] == 'run' for r in rows)} runs. Columns before `model` are the config keys that differ "
         "between the runs. Test accuracy is shown but never ranks runs (that would be model selection on the "
         "test set). The random classifier guesses uniformly (1 / classes). Times: `train wall s` is the "
         "training loop (compiling and every epoch with its validation; not data loading, evaluation or process "
         "start); `first epoch s` includes compiling the model; `steady s / epoch` is the median of the later epochs."),
        "",
    ]
    if len(groups) > 1:
        lines += [f"**{DATA_DIFFERS_TEXT}.**", ""]
    for label, text in groups:
        if len(groups) > 1:
            lines += [f"## Data: {label}", ""]
        else:
            lines += [f"Data: {label}.", ""]
        lines += [
            f"Runs {text}.",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
            *(_markdown_row(r, keys) for r in rows if r["data"] == label),
            "",
        ]
    lines += _seed_lines(seeds)
    for png in pngs:
        rel = Path(os.path.relpath(png, out)).as_posix()
        lines += [f"![{Path(png).stem}]({rel})", ""]
    Path(path).write_text("\n".join(lines))
    return str(path)
