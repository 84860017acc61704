"""`kerasclf compare`: a table and overlaid curves over run directories.

The table has one row per run: the config keys whose values differ between the runs, the
model, epochs, best validation accuracy (epoch), test accuracy, weight layers / trainable,
trainable parameters, wall time and seconds per epoch, plus a random-classifier row
(1 / classes). Rows are sorted by test accuracy when every finished run has one, else by
best validation accuracy; the best run is marked. Failed and unfinished runs are listed
last with their state (and error).
"""

import csv
import json
import os
import warnings
from pathlib import Path

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
    ("wall_seconds", "wall s"),
    ("seconds_per_epoch", "s / epoch"),
)


def varying_keys(configs):
    """Dotted keys whose value is not the same in every config (a missing key counts as a value)."""
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f} - IGNORED_KEYS - {"model.name"})
    marker = object()
    return [k for k in keys if len({_hashable(f.get(k, marker)) for f in flat}) > 1]


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def build_table(runs):
    """(columns, rows): rows are dicts with the CSV columns plus 'kind' (run | random)."""
    keys = varying_keys([r.config for r in runs])
    labels = run_labels([r.path for r in runs])
    rows = []
    for run, label in zip(runs, labels):
        flat, m = flatten(run.config), run.metrics
        row = {"kind": "run", "run": label, "state": run.state, "error": run.error}
        row.update({k: flat.get(k) for k in keys})
        row.update({
            "model": m.get("model") or flat.get("model.name"),
            "epochs": m.get("epochs_run"),
            "best_val_accuracy": m.get("best_val_accuracy"),
            "best_epoch": m.get("best_epoch"),
            "test_accuracy": m.get("test_accuracy"),
            "weight_layers": m.get("weight_layers"),
            "trainable_weight_layers": m.get("trainable_weight_layers"),
            "params_trainable": m.get("params_trainable"),
            "wall_seconds": m.get("wall_seconds"),
            "seconds_per_epoch": m.get("seconds_per_epoch"),
            "num_classes": m.get("num_classes") or len(m.get("class_names") or []) or None,
        })
        rows.append(row)
    finished = [r for r in rows if r["state"] == "finished"]
    by = "test_accuracy" if finished and all(r["test_accuracy"] is not None for r in finished) else "best_val_accuracy"
    for classes in sorted({r["num_classes"] for r in finished if r["num_classes"]}):
        rows.append({
            "kind": "random", "run": f"random classifier (1/{classes})", "state": "", "error": "",
            "best_val_accuracy": 1 / classes, "test_accuracy": 1 / classes, "num_classes": classes,
        })
    scored = [r for r in rows if r["kind"] == "random" or r["state"] == "finished"]
    scored.sort(key=lambda r: -(r[by] if r[by] is not None else -1))
    best = next((r for r in scored if r["kind"] == "run" and r[by] is not None), None)
    for r in rows:
        r["best"] = r is best
    rest = [r for r in rows if r not in scored]
    return keys, by, scored + rest


def write_comparison(run_dirs, out_dir, curves=True, hparams=True):
    """comparison.md / comparison.csv (+ compare_*.png, hparams/) in out_dir; returns their paths."""
    runs = [load_run(p) for p in run_dirs]
    keys, by, rows = build_table(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": _write_csv(out / "comparison.csv", keys, rows)}
    pngs = []
    if curves:
        pngs = plot_overlaid_curves(runs, run_labels([r.path for r in runs]), out)
    if hparams:
        paths["hparams"] = write_hparams(runs, run_labels([r.path for r in runs]), keys, out / "hparams")
    paths["markdown"] = _write_markdown(out / "comparison.md", keys, by, rows, pngs, out)
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


def _write_csv(path, keys, rows):
    columns = ["rank", "best", "run", *keys, "model", "epochs", "best_val_accuracy", "best_epoch",
               "test_accuracy", "weight_layers", "trainable_weight_layers", "params_trainable",
               "wall_seconds", "seconds_per_epoch", "num_classes", "state", "error"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        rank = 0
        for row in rows:
            if row["kind"] == "run" and row["state"] == "finished":
                rank += 1
            values = {
                **row, "best": int(row["best"]),
                "rank": rank if row["kind"] == "run" and row["state"] == "finished" else "",
            }
            writer.writerow(["" if values.get(c) is None else _csv_value(values.get(c)) for c in columns])
    return str(path)


def _csv_value(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _percent(value):
    return MISSING if value is None else f"{100 * value:.2f}%"


def _cell(value):
    if value is None:
        return MISSING
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return str(value).replace("|", "&#124;")


def _markdown_row(row, keys):
    if row["kind"] == "random":
        cells = [f"*{row['run']}*", *[""] * len(keys), "", "", _percent(row["best_val_accuracy"]),
                 _percent(row["test_accuracy"]), "", "", "", ""]
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
        _cell(row["wall_seconds"]), _cell(row["seconds_per_epoch"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _write_markdown(path, keys, by, rows, pngs, out):
    headers = ["run", *keys, *(h for _, h in FIXED_COLUMNS)]
    sort_name = "test accuracy" if by == "test_accuracy" else "best validation accuracy"
    lines = [
        "# Run comparison",
        "",
        f"{sum(r['kind'] == 'run' for r in rows)} runs, sorted by {sort_name}; columns before `model` are the "
        "config keys that differ between the runs. The random classifier guesses uniformly (1 / classes).",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *(_markdown_row(r, keys) for r in rows),
        "",
    ]
    for png in pngs:
        rel = Path(os.path.relpath(png, out)).as_posix()
        lines += [f"![{Path(png).stem}]({rel})", ""]
    Path(path).write_text("\n".join(lines))
    return str(path)
