"""The sections of report.md, each a registered function, shown in `order`.

A section is `fn(ctx) -> list of markdown lines` (empty: the section is left out), where
`ctx` is a `ReportContext`. A section may also write its own files into `ctx.out` and link
them with relative paths. Registration meta: `order` (smaller first) and `tasks` (the tasks
it applies to; default: all).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

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
        f"- accuracy: **{100 * summary['accuracy']:.2f}%**",
        f"- macro F1: {metrics['f1_macro']:.4f}",
        f"- macro ROC AUC (one-vs-rest): {'n/a' if auc is None else f'{auc:.4f}'}",
    ]
    if summary["best_class"] is not None:
        lines += [
            f"- best class: **{summary['best_class']}** {by_name[summary['best_class']]}",
            f"- worst class: **{summary['worst_class']}** {by_name[summary['worst_class']]}",
        ]
    return lines + [""]


# (key, label) of the run facts the "run" section shows, in order; missing keys are left out.
RUN_FIELDS = (
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
    ("wall_seconds", "training wall time (s)"),
)


@register_section("run", description="the model and its training run: parameters, weight layers, frozen layers, best epoch", order=20)
def run_section(ctx):
    run = ctx.run
    if not run:
        return []
    lines = ["## Run", ""]
    for key, label in RUN_FIELDS:
        if run.get(key) is not None:
            value = run[key]
            value = f"{value:,}" if isinstance(value, int) else (f"{value:.4f}" if isinstance(value, float) else value)
            lines.append(f"- {label}: {value}")
    frozen = run.get("frozen_layers") or []
    if frozen:
        shown = ", ".join(frozen[:20]) + (f", ... ({len(frozen)} in all)" if len(frozen) > 20 else "")
        lines.append(f"- frozen layers: {shown}")
    return lines + [""]


def per_class_table(per_class):
    """Markdown table lines: class | accuracy ("93.40% (934/1000)")."""
    lines = ["| class | accuracy |", "|---|---|"]
    # a "|" inside a class name would split the cell
    lines += [f"| {row['class'].replace('|', '&#124;')} | {row['text']} |" for row in per_class]
    return lines


@register_section("per_class", description='per-class accuracy as "93.40% (934/1000)"', order=30, tasks=("multiclass",))
def per_class_section(ctx):
    return ["## Per-class accuracy", "", *per_class_table(ctx.summary["per_class"]), ""]


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
