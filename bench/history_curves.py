"""Validation (solid) and training (dashed) accuracy per epoch of several runs, in one PNG.

    python bench/history_curves.py --out curves.png --title "make demo" \
        before=logs/run-a before=logs/run-b after=logs/run-c

Each argument is LABEL=RUN_DIR (a run directory with history.csv); runs sharing a label
share a colour. Prints one JSON line per run: label, run, val_accuracy per epoch.
Used for the BatchNorm momentum before/after figures of issue #13.
"""

import argparse
import csv
import json
from pathlib import Path


def read_history(run_dir):
    rows = list(csv.DictReader(open(Path(run_dir) / "history.csv")))
    return [float(r["accuracy"]) for r in rows], [float(r["val_accuracy"]) for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {}
    for spec in args.runs:
        label, run = spec.split("=", 1)
        train, val = read_history(run)
        colour = colours.setdefault(label, f"C{len(colours)}")
        epochs = range(1, len(val) + 1)
        first = label not in [line.get_label() for line in ax.lines]
        ax.plot(epochs, val, "-o", color=colour, markersize=3, label=label if first else None)
        ax.plot(epochs, train, "--", color=colour, alpha=0.5)
        print(json.dumps({"label": label, "run": run, "val_accuracy": [round(v, 4) for v in val]}))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (solid: validation, dashed: training)")
    ax.set_ylim(0, 1.01)
    ax.set_title(args.title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
