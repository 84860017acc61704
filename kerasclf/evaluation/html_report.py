"""One self-contained HTML page per run (`kerasclf report logs/<run>`; `evaluate` writes it too).

Rendered from templates/run_report.html.j2 (Jinja2, autoescaped); every figure is embedded
as a base64 data URI and the page has no script and no external resource, so it opens
offline and can be mailed as one file. It gathers what the run directory holds: metrics.json,
config.yaml, the training curves (history.csv), each eval/<split>/ report (summary,
per-class table, classification report, confusion matrices, ROC, galleries, t-SNE) and
the gradient-flow charts, plus the environment of the machine that wrote the page.
"""

import base64
import csv
import datetime
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import jinja2
import keras

from kerasclf import __version__
from kerasclf.errors import DataError
from kerasclf.evaluation import figures
from kerasclf.evaluation.resource_figures import plot_resources
from kerasclf.runs.atomic import write_text

TEMPLATE = "run_report.html.j2"
# The figures of an eval/<split>/ folder in the order the page shows them: (file stem, caption).
EVAL_FIGURES = (
    ("confusion_matrix", "Confusion matrix (counts)"),
    ("confusion_matrix_normalized", "Confusion matrix (row-normalised)"),
    ("roc", "ROC curves (one-vs-rest)"),
    ("samples", "Sample predictions: pred (true)"),
    ("misclassified", "Misclassified, most confident first"),
    ("misclassified_gradcam", "Grad-CAM of misclassified images"),
)
SUMMARY_KEYS = (
    ("model", "model"), ("dataset", "data"), ("epochs_run", "epochs run"), ("best_epoch", "best epoch"),
    ("best_val_accuracy", "best validation accuracy"), ("test_accuracy", "test accuracy"),
    ("params_total", "parameters"), ("params_trainable", "trainable parameters"),
    ("weight_layers", "weight layers"), ("trainable_weight_layers", "trainable weight layers"),
    ("wall_seconds", "training wall time (s)"), ("checkpoint", "checkpoint"), ("stopped", "stopped"),
)
VERSIONS = ("keras", "tensorflow", "jax", "numpy", "scikit-learn", "matplotlib", "keras-hub", "jinja2")


def data_uri(path):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _figure(path, caption):
    return {"caption": caption, "src": data_uri(path), "name": Path(path).name}


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _fmt(value):
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def eval_section(folder, run_dir):
    """What one eval/<split>/ folder holds, ready for the template."""
    folder = Path(folder)
    metrics = _read_json(folder / "metrics.json") or {}
    report = _read_json(folder / "classification_report.json") or {}
    per_class = []
    for name, accuracy in (metrics.get("per_class_accuracy") or {}).items():
        row = report.get(name, {})
        per_class.append({"class": name, "accuracy": "n/a" if accuracy is None else f"{100 * accuracy:.2f}%",
                          "precision": _fmt(row.get("precision")), "recall": _fmt(row.get("recall")),
                          "f1": _fmt(row.get("f1-score")), "support": _fmt(None if row.get("support") is None else int(row["support"])),
                          "auc": _fmt((metrics.get("per_class_auc") or {}).get(name))})
    texts = {}
    if (folder / "per_class_accuracy.csv").is_file():
        with open(folder / "per_class_accuracy.csv", newline="") as f:
            texts = {row["class"]: row["text"] for row in csv.DictReader(f)}
    for row in per_class:
        row["accuracy"] = texts.get(row["class"], row["accuracy"])
    figs = [_figure(folder / f"{stem}.png", caption) for stem, caption in EVAL_FIGURES if (folder / f"{stem}.png").is_file()]
    embeddings = sorted((folder / "embeddings").glob("*.png")) if (folder / "embeddings").is_dir() else []
    report_text = (folder / "classification_report.txt").read_text() if (folder / "classification_report.txt").is_file() else ""
    try:
        label = str(folder.relative_to(run_dir))
    except ValueError:
        label = str(folder)
    summary = [("split", metrics.get("split", folder.name)), ("images", _fmt(metrics.get("size"))),
               ("accuracy", "n/a" if metrics.get("accuracy") is None else f"{100 * metrics['accuracy']:.2f}%"),
               ("macro F1", _fmt(metrics.get("f1_macro"))), ("macro ROC AUC (one-vs-rest)", _fmt(metrics.get("macro_auc"))),
               ("best class", metrics.get("best_class") or "n/a"), ("worst class", metrics.get("worst_class") or "n/a")]
    return {"name": label, "title": metrics.get("title", ""), "summary": summary, "per_class": per_class,
            "report_text": report_text, "figures": figs,
            "embeddings": [_figure(p, p.stem.replace("_", " ")) for p in embeddings]}


def environment():
    """Versions and devices of the machine writing the page."""
    versions = [("python", platform.python_version()), ("kerasclf", __version__)]
    for name in VERSIONS:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    backend = os.environ.get("KERAS_BACKEND")
    devices = "n/a"
    if "keras" in sys.modules:  # already imported (evaluate): ask it; `report` alone does not import Keras

        backend = keras.backend.backend()
        try:
            devices = ", ".join(keras.distribution.list_devices()) or "n/a"
        except Exception:  # a backend without device listing (or none available)
            devices = "n/a"
    return {"versions": versions, "backend": backend or "tensorflow (default)", "devices": devices,
            "platform": platform.platform(), "cpus": os.cpu_count(), "host": platform.node(),
            "written": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def gather(run_dir, eval_dirs=None):
    """Everything the template needs, from a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{str(run_dir)!r} is not a directory; pass a run directory (logs/<run>).")
    metrics = _read_json(run_dir / "metrics.json") or {}
    if eval_dirs is None:
        eval_dirs = sorted(p.parent for p in run_dir.glob("eval/*/metrics.json"))
    if not metrics and not eval_dirs and not (run_dir / "history.csv").is_file():
        raise DataError(
            f"{str(run_dir)!r} holds no metrics.json, history.csv or eval/<split>/ report: it is not a kerasclf run "
            "directory (kerasclf train writes logs/<run>/)."
        )
    summary = [(label, _fmt(metrics[key])) for key, label in SUMMARY_KEYS if metrics.get(key) is not None]
    curves = []
    history = run_dir / "history.csv"
    if history.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            paths = figures.plot_history(history, tmp)
            resources = plot_resources(history, Path(tmp) / "resources.png")
            curves = [_figure(p, f"Training curve: {Path(p).stem.removeprefix('curves_')}") for p in paths]
            if resources:
                curves.append(_figure(resources, "System resources per epoch"))
    flows = sorted((run_dir / "gradient_flow").glob("epoch_*.png")) if (run_dir / "gradient_flow").is_dir() else []
    if len(flows) > 2:
        flows = [flows[0], flows[-1]]  # before training and the last: the change is what one reads
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    return {
        "title": f"Run {run_dir.name}" + (f" ({metrics['model']})" if metrics.get("model") else ""),
        "run_dir": str(run_dir), "summary": summary, "config": config, "curves": curves,
        "evals": [eval_section(d, run_dir) for d in eval_dirs],
        "gradient_flow": [_figure(p, f"Gradient flow, {p.stem.replace('_', ' ')}") for p in flows],
        "frozen": metrics.get("frozen_layers") or [],
        "env": environment(),
    }


def render(context):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=jinja2.select_autoescape(("html", "j2")), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(**context)


def write_html_report(run_dir, out_path=None, eval_dirs=None):
    """Write the page (default <run>/report.html); returns its path."""
    out_path = Path(out_path) if out_path else Path(run_dir) / "report.html"
    write_text(out_path, render(gather(run_dir, eval_dirs)))
    return str(out_path)
