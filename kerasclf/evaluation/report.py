"""write_report: every evaluation artefact for one split, tied together by report.md.

The tables, figures and metrics.json are written here; report.md is rendered from the
registered report sections (kerasclf.evaluation.sections).
"""

import csv
import json
from pathlib import Path

import numpy as np

from kerasclf.evaluation import figures
from kerasclf.evaluation.metrics import (
    as_labels,
    as_probs,
    classification_summary,
    roc_curves,
    to_jsonable,
)
from kerasclf.evaluation.resource_figures import plot_resources
from kerasclf.evaluation.sections import ReportContext, per_class_table, render
from kerasclf.runs.atomic import atomic_open, write_text


def write_report(out_dir, y_true, y_prob, class_names, images=None, history_csv=None,
                 title="", split="test", extra=None, run=None):
    """Write tables, figures, metrics.json and report.md for one split into `out_dir`.

    y_true: integer labels (N,); y_prob: class scores (N, C) (a single sigmoid column is
    accepted for 2 classes); images: optional uint8 NHWC array for the sample galleries;
    history_csv: optional Keras CSVLogger file for training curves; extra: JSON-able values
    merged into metrics.json (computed metrics win on a name clash); run: optional facts about
    the model and its training run (parameter counts, frozen layers, best epoch...) shown in
    report.md's "Run" section.
    Returns the metrics dict plus "report_path".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    class_names = [str(c) for c in class_names]
    n = len(class_names)
    y_prob = as_probs(y_prob, n)
    y_true = as_labels(y_true, n)
    if len(y_true) != len(y_prob):
        raise ValueError(f"y_true has {len(y_true)} rows but y_prob has {len(y_prob)}")
    y_pred = y_prob.argmax(axis=1)

    summary = classification_summary(y_true, y_pred, class_names)
    roc = roc_curves(y_true, y_prob, class_names)
    _write_tables(out, summary, class_names, y_true, y_pred, y_prob)
    pngs = _write_figures(out, summary, roc, class_names, y_true, y_pred, y_prob,
                          images, history_csv)
    metrics = _metrics(summary, roc, split, title, extra)
    _write_json(out / "metrics.json", metrics)
    ctx = ReportContext(
        out=out, title=title, split=split, summary=summary, metrics=metrics, figures=pngs, run=run,
        arrays={"y_true": y_true, "y_pred": y_pred, "y_prob": y_prob, "images": images},
    )
    report_path = out / "report.md"
    write_text(report_path, render(ctx))
    return {**metrics, "report_path": str(report_path)}


def _write_json(path, value):
    # every report file is written atomically: a kill leaves the previous report, never a torn one
    with atomic_open(path, "w") as f:
        json.dump(to_jsonable(value), f, indent=2)
        f.write("\n")


def _write_tables(out, summary, class_names, y_true, y_pred, y_prob):
    write_text(out / "classification_report.txt", summary["report_text"])
    _write_json(out / "classification_report.json", summary["report"])
    with atomic_open(out / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        # rows: true class, columns: predicted class
        writer.writerow(["true \\ pred", *class_names])
        for name, row in zip(class_names, summary["confusion"]):
            writer.writerow([name, *row])
    with atomic_open(out / "per_class_accuracy.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "correct", "total", "accuracy", "text"])
        for row in summary["per_class"]:
            acc = "" if row["accuracy"] is None else f"{row['accuracy']:.6f}"
            writer.writerow([row["class"], row["correct"], row["total"], acc, row["text"]])
    write_text(out / "per_class_accuracy.md", "\n".join(per_class_table(summary["per_class"])) + "\n")
    confidence = y_prob[np.arange(len(y_pred)), y_pred]
    with atomic_open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "true", "pred", "confidence"])
        for i, (t, p, c) in enumerate(zip(y_true, y_pred, confidence)):
            writer.writerow([i, class_names[t], class_names[p], f"{c:.6f}"])


def _write_figures(out, summary, roc, class_names, y_true, y_pred, y_prob, images, history_csv):
    """All PNGs, as a list of (caption, path) in the order report.md shows them."""
    cm = summary["confusion"]
    pngs = [
        ("Confusion matrix (counts)",
         figures.plot_confusion_matrix(cm, class_names, out / "confusion_matrix.png", False)),
        ("Confusion matrix (row-normalised)",
         figures.plot_confusion_matrix(cm, class_names, out / "confusion_matrix_normalized.png",
                                       True)),
        ("ROC curves (one-vs-rest)", figures.plot_roc(roc, out / "roc.png")),
    ]
    if images is not None:
        pngs.append(("Sample predictions: pred (true)", figures.plot_prediction_grid(
            images, y_true, y_pred, class_names, out / "samples.png")))
        pngs.append(("Misclassified, most confident first", figures.plot_misclassified(
            images, y_true, y_pred, class_names, out / "misclassified.png", y_prob=y_prob)))
    if history_csv is not None and Path(history_csv).is_file():
        captions = {"curves_loss": "loss", "curves_accuracy": "accuracy",
                    "curves_lr": "learning rate"}
        for path in figures.plot_history(history_csv, out):
            pngs.append((f"Training curve: {captions.get(Path(path).stem, Path(path).stem)}", path))
        resources = plot_resources(history_csv, out / "resources.png")
        if resources:
            pngs.append(("System resources per epoch", resources))
    return pngs


def _metrics(summary, roc, split, title, extra):
    report = summary["report"]
    macro, weighted = report["macro avg"], report["weighted avg"]
    computed = {
        "split": split,
        "title": title,
        "accuracy": summary["accuracy"],
        "size": summary["size"],
        "precision_macro": macro["precision"],
        "recall_macro": macro["recall"],
        "f1_macro": macro["f1-score"],
        "precision_weighted": weighted["precision"],
        "recall_weighted": weighted["recall"],
        "f1_weighted": weighted["f1-score"],
        "per_class_accuracy": {row["class"]: row["accuracy"] for row in summary["per_class"]},
        "best_class": summary["best_class"],
        "worst_class": summary["worst_class"],
        "macro_auc": roc["macro_auc"],
        "per_class_auc": {name: curve["auc"] for name, curve in roc["classes"].items()},
        # kept so callers can re-render the matrix (e.g. TensorBoard) without recomputing it
        "class_names": [row["class"] for row in summary["per_class"]],
        "confusion": summary["confusion"],
    }
    return {**(extra or {}), **computed}
