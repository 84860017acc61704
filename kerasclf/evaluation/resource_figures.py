"""System resources per epoch (from history.csv): CPU and GPU utilisation, memory."""

import re
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from kerasclf.plotting import history_epochs, new_figure, read_history, save_figure

# history.csv columns written by training.callbacks.SystemMonitor
PERCENT = {"sys_cpu_percent": "CPU (system-wide, all cores)"}
MEMORY = {"sys_memory_gb": "process memory (RSS)", "sys_accelerator_memory_gb": "accelerator memory (backend)"}
GPU_UTIL = re.compile(r"^sys_gpu(\d+)_util_percent$")
GPU_MEMORY = re.compile(r"^sys_gpu(\d+)_memory_gb$")


def _series(columns):
    percent = [(label, key) for key, label in PERCENT.items() if key in columns]
    memory = [(label, key) for key, label in MEMORY.items() if key in columns]
    for key in sorted(columns):
        if match := GPU_UTIL.match(key):
            percent.append((f"GPU {match.group(1)} utilisation (NVML, epoch mean)", key))
        elif match := GPU_MEMORY.match(key):
            memory.append((f"GPU {match.group(1)} memory used (NVML, epoch peak)", key))
    keep = lambda pairs: [(label, key) for label, key in pairs if np.isfinite(columns[key]).any()]  # noqa: E731
    return keep(percent), keep(memory)


def plot_resources(history_csv, path):
    """resources.png: utilisation (%) above, memory (GiB) below; None when history.csv has neither."""
    columns = read_history(history_csv)
    if not columns:
        return None
    percent, memory = _series(columns)
    if not percent and not memory:
        return None
    epochs = history_epochs(columns)
    panels = [(p, ylabel) for p, ylabel in ((percent, "utilisation (%)"), (memory, "memory (GiB)")) if p]
    fig = new_figure(6.5, 3.0 * len(panels) + 0.4)
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for ax, (series, ylabel) in zip(axes, panels):
        for label, key in series:
            ok = np.isfinite(columns[key])
            ax.plot(epochs[ok], columns[key][ok], marker="o", markersize=3, label=label)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("System resources per epoch")
    return save_figure(fig, Path(path))
