"""Figure helpers shared by evaluation, training diagnostics and studies.

Figures are built from ``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` rather than pyplot,
so no global backend or pyplot figure state is touched (safe on headless machines and inside
training processes); they are saved atomically, so a linked PNG is whole or absent.
"""

import csv
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kerasclf.runs.atomic import atomic_path


def new_figure(width: float, height: float, layout="constrained") -> Figure:
    """A pyplot-free figure with an Agg canvas."""
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path, dpi: int = 100) -> str:
    """Write `fig` as PNG to `path` atomically; returns the path as a string."""
    path = Path(path)
    with atomic_path(path) as tmp:  # the temporary name keeps the suffix savefig picks the format by
        fig.savefig(tmp, dpi=dpi)
    return str(path)


def read_history(path) -> dict:
    """CSVLogger file (history.csv) -> {column: float array}; 'NA'/blank cells become NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    columns = {}
    for key in rows[0]:
        if key is None:
            continue
        values = []
        for row in rows:
            try:
                values.append(float(row.get(key) or "nan"))
            except ValueError:  # CSVLogger writes "NA" for metrics missing in an epoch
                values.append(float("nan"))
        columns[key.strip()] = np.asarray(values)
    return columns


def history_epochs(columns) -> np.ndarray:
    """The epoch numbers to plot for history.csv's rows: its own "epoch" column (kerasclf's
    history.csv counts from 1, like the console and metrics.json's best_epoch); a plain Keras
    CSVLogger file counts from 0 and is shifted to match; no column: 1..N."""
    length = len(next(iter(columns.values())))
    if "epoch" not in columns:
        return np.arange(1, length + 1)
    epochs = columns["epoch"]
    return epochs + 1 if len(epochs) and np.nanmin(epochs) == 0 else epochs


def spans_decades(arrays, ratio: float = 100.0) -> bool:
    """True when the finite values of `arrays` are all positive and the largest is over `ratio`
    times the smallest: on a linear axis everything but the largest would lie flat on zero (one
    diverged run's loss of 1e11 beside healthy runs' 0.5), so the figure wants a log axis."""
    finite = [a[np.isfinite(a)] for a in (np.asarray(x, dtype=float).ravel() for x in arrays)]
    values = np.concatenate(finite) if finite else np.array([])
    return bool(values.size) and values.min() > 0 and values.max() / values.min() > ratio
