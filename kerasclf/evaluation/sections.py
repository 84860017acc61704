"""The sections of report.md, each a registered function, shown in `order`.

A section is `fn(ctx) -> list of markdown lines` (empty: the section is left out), where
`ctx` is a `ReportContext`. A section may also write its own files into `ctx.out` and link
them with relative paths. Registration meta: `order` (smaller first) and `tasks` (the tasks
it applies to; default: all).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasclf.evaluation.metrics import most_confused_pairs
from kerasclf.registry import REPORT_SECTIONS

register_section = REPORT_SECTIONS.register


@dataclass
class ReportContext:
    out: Path  # the report folder
    title: str
    split: str
    summary: dict  # kerasclf.evaluation.metrics.classification_summary
    metrics: dict  # what metrics.json holds
    figures: list = field(default_factory=list)  # (caption, path) of the PNGs written
    run: dict | None = None  # facts about the model and its training run
    task: str = "multiclass"
    arrays: dict = field(default_factory=dict)  # y_true, y_pred, y_prob, images (for sections that plot)


def render(ctx):
    """report.md's text: the title, then every section that applies, in order."""
    lines = [f"# {ctx.title or 'Evaluation report'}", ""]
    entries = sorted(REPORT_SECTIONS.entries(), key=lambda e: (e.meta.get("order", 100), e.name))
    for entry in entries:
        tasks = entry.meta.get("tasks")
        if tasks is None or ctx.task in tasks:
            lines += entry.factory(ctx)
    return "\n".join(lines)


@register_section("summary", description="split, size, accuracy, macro F1 and AUC, best and worst class", order=10,
                  tasks=("multiclass",))
def summary_section(ctx):
    summary, metrics = ctx.summary, ctx.metrics
    by_name = {row["class"]: row["text"] for row in summary["per_class"]}
    auc = metrics["macro_auc"]
    lines = [
        f"- split: **{ctx.split}**",
        f"- size: {summary['size']}",
        f"- accuracy: **{100 * summary['accuracy']:.2f}%**"
        + (f" (one image moves it by {metrics['accuracy_step_points']:.1f} points: differences of a few points are noise)"
           if (metrics.get("accuracy_step_points") or 0) > 2.0 else ""),
        f"- macro F1: {metrics['f1_macro']:.4f}",
        f"- macro ROC AUC (one-vs-rest): {'n/a' if auc is None else f'{auc:.4f}'}",
    ]
    if metrics.get("ece") is not None:
        lines.append(f"- expected calibration error (10 confidence bins): {metrics['ece']:.3f}")
    if summary["best_class"] is not None:
        lines += [
            f"- best class: **{summary['best_class']}** {by_name[summary['best_class']]}",
            f"- worst class: **{summary['worst_class']}** {by_name[summary['worst_class']]}",
        ]
    return lines + [""]


# (key, label) of the run facts the "run" section shows, in order; missing keys are left out.
RUN_FIELDS = (
    ("run_name", "run"),
    ("model", "model"),
    ("dataset", "trained on"),
    ("loss", "loss"),
    ("trainable", "trainable policy"),
    ("params_total", "parameters"),
    ("params_trainable", "trainable parameters"),
    ("weight_layers", "weight layers"),
    ("trainable_weight_layers", "trainable weight layers"),
    ("epochs_run", "epochs run"),
    ("best_epoch", "best epoch"),
    ("best_val_accuracy", "best validation accuracy"),
    ("wall_seconds", "training wall time (compiling and every epoch with its validation)"),
    ("first_epoch_seconds", "first epoch (includes compiling the model)"),
    ("steady_seconds_per_epoch", "steady time per epoch (median of epochs 2..N)"),
)
SECONDS_FIELDS = {"wall_seconds", "first_epoch_seconds", "steady_seconds_per_epoch"}
PERCENT_FIELDS = {"best_val_accuracy"}


def run_value(key, value):
    """A run fact as report.md shows it: seconds as "10.8 s", accuracies as percentages."""
    if key in SECONDS_FIELDS:
        return f"{value:.1f} s"
    if key in PERCENT_FIELDS:
        return f"{100 * value:.2f}%"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if isinstance(value, float) else value


@register_section("run", description="the model and its training run: parameters, weight layers, frozen layers, best epoch", order=20)
def run_section(ctx):
    run = ctx.run
    if not run:
        return []
    lines = ["## Run", ""]
    for key, label in RUN_FIELDS:
        if run.get(key) is not None:
            lines.append(f"- {label}: {run_value(key, run[key])}")
    frozen = run.get("frozen_layers") or []
    if frozen:
        shown = ", ".join(frozen[:20]) + (f", ... ({len(frozen)} in all)" if len(frozen) > 20 else "")
        lines.append(f"- frozen layers: {shown}")
    hyper = run.get("hyperparameters") or {}
    if hyper:
        lines += ["", "Hyperparameters (config.yaml; the keys always shown plus every key set away from its default):", "",
                  "| key | value |", "|---|---|"]
        lines += [f"| `{k}` | {str(v).replace('|', '&#124;')} |" for k, v in hyper.items()]
    return lines + [""]


@register_section("augmented_batch", description="training images as the model sees them after augmentation", order=84)
def augmented_batch_section(ctx):
    path = (ctx.run or {}).get("augmented_batch")
    if not path:
        return []
    rel = Path(os.path.relpath(path, ctx.out)).as_posix()
    return ["## Augmented training images", "",
            ("Each training image beside what the model's augmentation layers make of it (written when training "
             "starts; each shown image is stretched to its own range; mixup/cutmix are not shown):"), "",
            f"![augmented training images]({rel})", ""]


@register_section("gradient_flow", description="links to the run's gradient-flow figures (train.gradient_flow_every)", order=85)
def gradient_flow_section(ctx):
    figures = (ctx.run or {}).get("gradient_flow_figures") or []
    if not figures:
        return []
    lines = ["## Gradient flow", "",
             "Mean and max absolute gradient per layer on a fixed probe batch (epoch 0: the initial weights):", ""]
    for path in figures:
        rel = Path(os.path.relpath(path, ctx.out)).as_posix()
        lines.append(f"- [{Path(path).stem.replace('_', ' ')}]({rel})")
    last = Path(os.path.relpath(figures[-1], ctx.out)).as_posix()
    return lines + ["", f"![gradient flow, last]({last})", ""]


def per_class_table(per_class):
    """Markdown table lines: class | accuracy ("93.40% (934/1000)")."""
    lines = ["| class | accuracy |", "|---|---|"]
    # a "|" inside a class name would split the cell
    lines += [f"| {row['class'].replace('|', '&#124;')} | {row['text']} |" for row in per_class]
    return lines


@register_section("per_class", description='per-class accuracy as "93.40% (934/1000)"', order=30, tasks=("multiclass",))
def per_class_section(ctx):
    return ["## Per-class accuracy", "", *per_class_table(ctx.summary["per_class"]), ""]


@register_section("most_confused", description="the class pairs most often confused (true -> predicted)", order=32, tasks=("multiclass",))
def most_confused_section(ctx):
    pairs = most_confused_pairs(ctx.summary["confusion"], [row["class"] for row in ctx.summary["per_class"]])
    if not pairs:
        return []
    lines = ["## Most confused classes", "", "| true | predicted as | images | share of the true class |", "|---|---|---|---|"]
    lines += [f"| {t} | {p} | {n} | {share:.1%} |" for t, p, n, share in pairs]
    return lines + [""]


TOP_LOSSES = 10


@register_section("top_losses", description="the images with the highest loss, with their files", order=34, tasks=("multiclass",))
def top_losses_section(ctx):
    y_true, y_prob = ctx.arrays.get("y_true"), ctx.arrays.get("y_prob")
    if y_true is None or y_prob is None or not len(y_true):
        return []
    names = [row["class"] for row in ctx.summary["per_class"]]
    paths = ctx.arrays.get("paths")
    p_true = y_prob[np.arange(len(y_true)), y_true]
    loss = -np.log(np.clip(p_true, 1e-12, None))
    order = np.argsort(-loss, kind="stable")[:TOP_LOSSES]
    lines = [f"## Top {len(order)} losses", "",
             "Cross-entropy of each image's true class (predictions.csv has every image's):", "",
             "| # | file | true | predicted | p(predicted) | p(true) | loss |", "|---|---|---|---|---|---|---|"]
    for rank, i in enumerate(order, start=1):
        file = "—" if paths is None else f"`{paths[i]}`"
        pred = int(y_prob[i].argmax())
        lines.append(f"| {rank} | {file} | {names[y_true[i]]} | {names[pred]} | {y_prob[i, pred]:.3f} | "
                     f"{p_true[i]:.3f} | {loss[i]:.3f} |")
    return lines + [""]


@register_section("classification_report", description="sklearn's classification report", order=40, tasks=("multiclass",))
def classification_report_section(ctx):
    return ["## Classification report", "", "```", ctx.summary["report_text"].rstrip(), "```", ""]


def _cell(value, percent=False):
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}%" if percent else f"{value:.4f}"


@register_section("multilabel_summary", description="multi-label: threshold, mAP, macro precision/recall/F1/IoU",
                  order=10, tasks=("multilabel",))
def multilabel_summary_section(ctx):
    m = ctx.metrics
    return [
        f"- split: **{ctx.split}**", f"- size: {m['size']}", f"- threshold: {m['threshold']:g}",
        f"- mAP: **{_cell(m['mAP'])}**",
        f"- macro precision / recall / F1 / IoU: {_cell(m['precision_macro'])} / {_cell(m['recall_macro'])} / "
        f"{_cell(m['f1_macro'])} / {_cell(m['iou_macro'])}",
        f"- every label right (subset accuracy): {_cell(m['subset_accuracy'], True)}",
        f"- images with no prediction: {m['empty_predictions']}", "",
    ]


@register_section("segmentation_summary", description="segmentation: pixel accuracy, mean IoU, frequency-weighted IoU",
                  order=10, tasks=("segmentation",))
def segmentation_summary_section(ctx):
    m = ctx.metrics
    return [
        f"- split: **{ctx.split}**", f"- images: {m['size']}, scored pixels: {m['pixels']:,} "
        f"(void pixels left out: {m['void_pixels']:,})",
        f"- pixel accuracy: {_cell(m['pixel_accuracy'], True)}", f"- mean class accuracy: {_cell(m['mean_accuracy'], True)}",
        f"- mean IoU: **{_cell(m['mean_iou'])}**", f"- frequency-weighted IoU: {_cell(m['fw_iou'])}", "",
    ]


@register_section("per_class_dense", description="per-class accuracy, precision, recall, F1, IoU (and AP)", order=30,
                  tasks=("multilabel", "segmentation"))
def per_class_dense_section(ctx):
    multilabel = ctx.task == "multilabel"
    count = "images" if multilabel else "pixels"
    keys = ("accuracy", "precision", "recall", "f1", "iou", *(("ap",) if multilabel else ()))
    lines = [f"## Per class{' (accuracy = share of the class pixels labelled right)' if not multilabel else ''}", "",
             f"| class | {count} | {' | '.join(keys)} |", "|---|---|" + "---|" * len(keys)]
    for row in ctx.metrics["per_class"]:
        support = row["support"] if multilabel else row["pixels"]
        lines.append(f"| {row['class'].replace('|', '&#124;')} | {support} | "
                     + " | ".join(_cell(row[k]) for k in keys) + " |")
    return lines + [""]


@register_section("figures", description="confusion matrices, ROC, galleries, training curves", order=90)
def figures_section(ctx):
    if not ctx.figures:
        return []
    lines = ["## Figures", ""]
    for caption, path in ctx.figures:
        # relative links so the directory can be moved or published as a whole
        rel = Path(os.path.relpath(path, ctx.out)).as_posix()
        lines += [f"### {caption}", "", f"![{caption}]({rel})", ""]
    return lines
