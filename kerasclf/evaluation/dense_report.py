"""Reports of the multi-label and segmentation tasks: metrics.json, per-class tables, figures,
report.md (rendered by the sections registered for these tasks in sections.py).

Segmentation predictions are reduced to class-index masks batch by batch (the full
probability tensor of a VOC split would take gigabytes).
"""

import csv
import json
from pathlib import Path

import numpy as np

from kerasclf.evaluation import figures
from kerasclf.evaluation.dense_metrics import IGNORE, confusion_counts, multilabel_metrics, segmentation_metrics
from kerasclf.evaluation.metrics import to_jsonable
from kerasclf.evaluation.sections import ReportContext, render
from kerasclf.runs.atomic import atomic_open, write_text

ROW_KEYS = ("accuracy", "precision", "recall", "f1", "iou", "ap")


def _write_json(path, value):
    with atomic_open(path, "w") as f:
        json.dump(to_jsonable(value), f, indent=2)
        f.write("\n")


def _write_table(path, rows, keys):
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *keys])
        for row in rows:
            writer.writerow([row["class"], *("" if row.get(k) is None else row[k] for k in keys)])


def predicted_labels(probabilities, threshold):
    """Per image, the indices of the classes at or above the threshold."""
    return [np.flatnonzero(p >= threshold).tolist() for p in probabilities]


def label_text(indices, class_names, empty="no prediction"):
    return ", ".join(class_names[i] for i in indices) if len(indices) else empty


def write_multilabel_report(out_dir, y_true, y_prob, class_names, images=None, history_csv=None, title="",
                            split="test", extra=None, run=None, threshold=0.5):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    class_names = [str(c) for c in class_names]
    metrics = {**(extra or {}), **multilabel_metrics(y_true, y_prob, class_names, threshold), "split": split,
               "title": title}
    _write_table(out / "per_class.csv", metrics["per_class"], ("support", "predicted", *ROW_KEYS))
    with atomic_open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "true", "pred", *class_names])
        for i, (t, p) in enumerate(zip(y_true, y_prob)):
            writer.writerow([i, label_text(np.flatnonzero(t), class_names, ""), label_text(np.flatnonzero(p >= threshold),
                             class_names), *(f"{v:.6f}" for v in p)])
    pngs = [("Precision-recall curves per class", figures.plot_pr_curves(y_true, y_prob, class_names, out / "pr_curves.png"))]
    if images is not None:
        pngs.append((f"Sample predictions: pred (true), threshold {threshold:g}", figures.plot_multilabel_grid(
            images, y_true, y_prob, class_names, out / "samples.png", threshold)))
    pngs += _history_figures(out, history_csv)
    _write_json(out / "metrics.json", metrics)
    return _render(out, title, split, metrics, pngs, run, "multilabel", {"y_true": y_true, "y_prob": y_prob})


def predict_masks(model, images, batch_size=32):
    """Class-index masks (N, H, W) uint8, predicted a batch at a time."""
    chunks = [model.predict(images[i:i + batch_size], verbose=0).argmax(-1).astype(np.uint8)
              for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, *images.shape[1:3]), np.uint8)


def write_segmentation_report(out_dir, y_true, y_pred, class_names, images=None, history_csv=None, title="",
                              split="test", extra=None, run=None):
    """y_true: masks with 255 = void; y_pred: predicted class-index masks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    class_names = [str(c) for c in class_names]
    cm = confusion_counts(y_true, y_pred, len(class_names))
    metrics = {**(extra or {}), **segmentation_metrics(cm, class_names), "split": split, "title": title,
               "size": len(y_true), "void_pixels": int((np.asarray(y_true) == IGNORE).sum())}
    _write_table(out / "per_class.csv", metrics["per_class"], ("pixels", "accuracy", "precision", "recall", "f1", "iou"))
    with atomic_open(out / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ pred", *class_names])
        for name, row in zip(class_names, cm):
            writer.writerow([name, *row])
    pngs = [
        ("Confusion matrix of pixels (row-normalised)",
         figures.plot_confusion_matrix(cm, class_names, out / "confusion_matrix_normalized.png", True)),
    ]
    if images is not None:
        pngs.append(("Images, true and predicted masks (VOC palette; void in cream)", figures.plot_segmentation_samples(
            images, y_true, y_pred, class_names, out / "samples.png")))
    pngs += _history_figures(out, history_csv)
    _write_json(out / "metrics.json", metrics)
    return _render(out, title, split, metrics, pngs, run, "segmentation", {"y_true": y_true, "y_pred": y_pred})


def _history_figures(out, history_csv):
    if history_csv is None or not Path(history_csv).is_file():
        return []
    return [(f"Training curve: {Path(p).stem.replace('curves_', '')}", p) for p in figures.plot_history(history_csv, out)]


def _render(out, title, split, metrics, pngs, run, task, arrays):
    ctx = ReportContext(out=out, title=title, split=split, summary=metrics, metrics=metrics, figures=pngs, run=run,
                        task=task, arrays=arrays)
    report_path = out / "report.md"
    write_text(report_path, render(ctx))
    return {**metrics, "report_path": str(report_path)}
