"""write_report: every evaluation artefact for one split, tied together by report.md.

The tables, figures and metrics.json are written here; report.md is rendered from the
registered report sections (kerasclf.evaluation.sections).
"""

import csv
import json
import warnings
from pathlib import Path

import numpy as np

from kerasclf.evaluation import figures
from kerasclf.evaluation.metrics import (
    accuracy_step_points,
    as_labels,
    as_probs,
    calibration,
    classification_summary,
    roc_curves,
    to_jsonable,
)
from kerasclf.evaluation.resource_figures import plot_resources
from kerasclf.evaluation.sections import ReportContext, per_class_table, render
from kerasclf.runs.atomic import atomic_open, write_text

MAX_ACCURACY_STEP = 2.0  # percentage points one image may move a split's accuracy before a warning


def write_report(out_dir, y_true, y_prob, class_names, images=None, history_csv=None,
                 title="", split="test", extra=None, run=None, paths=None):
    """Write tables, figures, metrics.json and report.md for one split into `out_dir`.

    y_true: integer labels (N,); y_prob: class scores (N, C) (a single sigmoid column is
    accepted for 2 classes); images: optional uint8 NHWC array for the sample galleries;
    history_csv: optional Keras CSVLogger file for training curves; extra: JSON-able values
    merged into metrics.json (computed metrics win on a name clash); run: optional facts about
    the model and its training run (parameter counts, frozen layers, best epoch...) shown in
    report.md's "Run" section; paths: optional image file per row (predictions.csv, gallery).
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
    calib = calibration(y_true, y_prob)
    step = accuracy_step_points(len(y_true))
    if step is not None and step > MAX_ACCURACY_STEP:
        warnings.warn(
            f"The {split} split has {len(y_true)} images: one image moves its accuracy by {step:.1f} points, so "
            f"differences of a few points between runs are noise. Use a larger {split} split "
            f"(at least {int(100 / MAX_ACCURACY_STEP)} images).", stacklevel=2)
    _write_tables(out, summary, class_names, y_true, y_pred, y_prob, paths)
    pngs = _write_figures(out, summary, roc, class_names, y_true, y_pred, y_prob,
                          images, history_csv, paths, (run or {}).get("best_epoch"))
    pngs.append(("Reliability diagram (expected calibration error in the title)",
                 figures.plot_reliability(calib, out / "reliability.png", f"Reliability, {split}")))
    metrics = _metrics(summary, roc, split, title, extra)
    metrics["ece"] = calib["ece"]
    metrics["calibration_bins"] = calib["bins"]
    metrics["accuracy_step_points"] = step
    _write_json(out / "metrics.json", metrics)
    ctx = ReportContext(
        out=out, title=title, split=split, summary=summary, metrics=metrics, figures=pngs, run=run,
        arrays={"y_true": y_true, "y_pred": y_pred, "y_prob": y_prob, "images": images, "paths": paths},
    )
    report_path = out / "report.md"
    write_text(report_path, render(ctx))
    return {**metrics, "report_path": str(report_path)}


def _write_json(path, value):
    # every report file is written atomically: a kill leaves the previous report, never a torn one
    with atomic_open(path, "w") as f:
        json.dump(to_jsonable(value), f, indent=2)
        f.write("\n")


def _write_tables(out, summary, class_names, y_true, y_pred, y_prob, paths=None):
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
        # file: the image's path as the data set names it (empty for in-memory data sets)
        writer.writerow(["index", "file", "true", "pred", "confidence", "loss"])
        loss = -np.log(np.clip(y_prob[np.arange(len(y_true)), y_true], 1e-12, None))
        for i, (t, p, c) in enumerate(zip(y_true, y_pred, confidence)):
            writer.writerow([i, "" if paths is None else paths[i], class_names[t], class_names[p], f"{c:.6f}",
                             f"{loss[i]:.6f}"])


def _write_figures(out, summary, roc, class_names, y_true, y_pred, y_prob, images, history_csv, paths=None,
                   best_epoch=None):
    """All PNGs, as a list of (caption, path) in the order report.md shows them."""
    cm = summary["confusion"]
    pngs = [
        ("Confusion matrix (counts)",
         figures.plot_confusion_matrix(cm, class_names, out / "confusion_matrix.png", False)),
        ("Confusion matrix (row-normalised)",
         figures.plot_confusion_matrix(cm, class_names, out / "confusion_matrix_normalized.png",
                                       True)),
        ("ROC curves (one-vs-rest)", figures.plot_roc(roc, out / "roc.png")),
        ("Per-class accuracy, sorted (worst first)",
         figures.plot_per_class_accuracy(summary["per_class"], out / "per_class_accuracy.png")),
    ]
    if images is not None:
        pngs.append(("Sample predictions: pred (true), drawn at random across the classes (seeded)", figures.plot_prediction_grid(
            images, y_true, y_pred, class_names, out / "samples.png")))
        pngs.append(("Misclassified, most confident first", figures.plot_misclassified(
            images, y_true, y_pred, class_names, out / "misclassified.png", y_prob=y_prob, paths=paths)))
    if history_csv is not None and Path(history_csv).is_file():
        captions = {"curves_loss": "loss", "curves_accuracy": "accuracy",
                    "curves_lr": "learning rate", "curves_aux_loss": "auxiliary (triplet/center) loss"}
        for path in figures.plot_history(history_csv, out, best_epoch):
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
