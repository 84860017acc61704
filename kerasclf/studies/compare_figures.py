"""Overlaid training curves of several runs (from their history.csv), one PNG per quantity."""

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import MaxNLocator

from kerasclf.plotting import history_epochs, new_figure, read_history, save_figure, spans_decades


def _colours(n):
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_overlaid_curves(runs, labels, out_dir):
    """compare_accuracy.png (validation accuracy, or train accuracy for runs without validation)
    and compare_loss.png (validation solid, train dashed), each run's best epoch starred on its
    validation curve; returns the paths written."""
    histories = [(label, read_history(r.history_csv), r.metrics.get("best_epoch"))
                 for r, label in zip(runs, labels) if r.history_csv]
    histories = [(label, cols, best) for label, cols, best in histories if cols]
    if not histories:
        return []
    colours = _colours(len(histories))
    out_dir = Path(out_dir)
    paths = []
    for name, ylabel, series in (
        ("accuracy", "validation accuracy", (("val_accuracy", "-"),)),
        ("loss", "loss (validation solid, train dashed)", (("val_loss", "-"), ("loss", "--"))),
    ):
        fig = new_figure(7.5, 4.6)
        ax = fig.add_subplot()
        drawn = starred = False
        plotted = []
        for (label, cols, best), colour in zip(histories, colours):
            keys = [(k, style) for k, style in series if k in cols and np.isfinite(cols[k]).any()]
            if name == "accuracy" and not keys and "accuracy" in cols:
                keys = [("accuracy", ":")]  # no validation split: its training accuracy, dotted
                label += " (train)"
            for i, (key, style) in enumerate(keys):
                y = cols[key]
                ok = np.isfinite(y)
                epochs = history_epochs(cols)
                ax.plot(epochs[ok], y[ok], style, color=colour, marker="o", markersize=3,
                        label=label if i == 0 else None)
                plotted.append(y[ok])
                at = np.flatnonzero(ok & (epochs == best)) if best else []
                if len(at) and key.startswith("val_"):  # the checkpoint's epoch, on its validation curve
                    ax.plot(epochs[at], y[at], linestyle="none", marker="*", markersize=13, color=colour,
                            markeredgecolor="black", zorder=3, label="best epoch (checkpoint)" if not starred else None)
                    starred = True
                drawn = True
        if not drawn:
            continue
        if name == "loss" and spans_decades(plotted):  # a diverged run would flatten the others
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{ylabel} (log scale)" if ax.get_yscale() == "log" else ylabel)
        ax.set_title(f"{ylabel} per epoch, {len(histories)} runs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if len(histories) <= 10 else 6, ncol=1 if len(histories) <= 10 else 2)
        paths.append(save_figure(fig, out_dir / f"compare_{name}.png"))
    return paths
