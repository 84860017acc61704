"""`kerasclf data-report`: a data set's class counts, samples, statistics, image sizes and
duplicates between splits, as PNG figures, report.md and report.json (the same numbers).

The numbers come from kerasclf.data.profile; this module draws and writes them. Image files
stay on disk and are read a chunk at a time, so a folder larger than memory can be reported.
"""

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from kerasclf.data import build_dataset
from kerasclf.data.profile import profile
from kerasclf.errors import DataError
from kerasclf.plotting import new_figure, save_figure

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
MAX_GRID_CLASSES = 30  # rows of the sample grid; more classes: the first 30
MAX_LABELLED_BARS = 20  # above this many classes, bars carry no value labels
BAR_LABEL_SIZE = 8.5  # points: readable in the PNG at 100 dpi (it was 6)


def build_report_dataset(data_cfg, seed=0):
    """The data set with its files left on disk (statistics read them a chunk at a time)."""
    return build_dataset(data_cfg, seed, keep_files=True)


def plot_class_counts(counts, class_names, path):
    """Grouped bars: images per class, one bar per split."""
    n = len(class_names)
    splits = list(counts)
    fig = new_figure(max(6.0, 0.6 * n * max(len(splits), 1) ** 0.5 + 2), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / max(len(splits), 1)
    positions = np.arange(n)
    for k, split in enumerate(splits):
        bars = ax.bar(positions + (k - (len(splits) - 1) / 2) * width, counts[split], width,
                      label=f"{split} ({sum(counts[split]):,})", color=SPLIT_COLOURS.get(split))
        if n <= MAX_LABELLED_BARS:  # upright while they fit over the bar, else turned
            upright = n * max(len(splits), 1) <= 12
            ax.bar_label(bars, fmt="{:,.0f}", fontsize=BAR_LABEL_SIZE, rotation=0 if upright else 90, padding=2)
    ax.set_xticks(positions, [str(c) for c in class_names], rotation=45 if n > 5 else 0,
                  ha="right" if n > 5 else "center", fontsize=8 if n <= 30 else 5)
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never on them
    return save_figure(fig, path)


def plot_samples_per_class(split, class_names, path, per_class=8, seed=0):
    """One row per class (its name on the left), `per_class` images of it chosen at random."""
    rng = np.random.default_rng(seed)
    classes = list(range(min(len(class_names), MAX_GRID_CLASSES)))
    rows = []
    for c in classes:
        index = np.flatnonzero(split.y == c)
        rows.append(np.sort(rng.choice(index, min(per_class, len(index)), replace=False)) if len(index) else [])
    fig = new_figure(1.1 * per_class + 1.6, 1.1 * len(classes) + 0.6, layout=None)
    fig.subplots_adjust(left=1.5 / (1.1 * per_class + 1.6), right=0.99, bottom=0.01,
                        top=1 - 0.5 / (1.1 * len(classes) + 0.6), wspace=0.05, hspace=0.08)
    axes = fig.subplots(len(classes), per_class, squeeze=False)
    for r, (c, index) in enumerate(zip(classes, rows)):
        for k, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if k < len(index):
                image = np.asarray(split.x[int(index[k])])
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, vmin=0, vmax=255,
                          cmap="gray" if image.shape[-1] == 1 else None, interpolation="nearest")
        axes[r][0].set_ylabel(str(class_names[c]), rotation=0, ha="right", va="center", fontsize=10)
    title = "Samples per class (train)"
    if len(class_names) > MAX_GRID_CLASSES:
        title += f": first {MAX_GRID_CLASSES} of {len(class_names)} classes"
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_image_sizes(size_counts, path, from_headers):
    """Histograms of image height and width (as stored, before any resize), all splits together."""
    heights, widths = [], []
    for entries in size_counts.values():
        for h, w, n in entries:
            heights += [h] * n
            widths += [w] * n
    fig = new_figure(8, 3.4)
    for k, (values, label) in enumerate(((heights, "height"), (widths, "width"))):
        ax = fig.add_subplot(1, 2, k + 1)
        low, high = min(values), max(values)
        bins = np.arange(low - 0.5, high + 1.5) if high - low < 40 else 40
        ax.hist(values, bins=bins, color="tab:blue")
        if high - low < 10:  # a few sizes: a tick on each, and room around a single bar
            ax.set_xticks(sorted(set(values)))
            ax.set_xlim(low - 2, high + 2)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{label} (pixels)")
        ax.set_ylabel("images")
        ax.set_title(f"{label}: {low} to {high}, median {np.median(values):g}", fontsize=10)
    source = "file headers" if from_headers else "the arrays"
    fig.suptitle(f"Image sizes as stored (from {source}; {len(set(zip(heights, widths)))} distinct)", fontsize=11)
    return save_figure(fig, path)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _orientation(numbers):
    """What the report and training do with EXIF orientation tags (phone photos stored sideways)."""
    turned = numbers.get("exif_turned") or {}
    if not turned:
        return []
    counts = ", ".join(f"{split}: {n:,} of {numbers['sizes'][split]:,}" for split, n in turned.items())
    return [f"EXIF orientation is applied when decoding (training, evaluation and the samples above show photos "
            f"upright; the sizes here are the upright ones). Files with an orientation tag that turns or flips "
            f"them: {counts}.", ""]


def _markdown(numbers, figures):
    names, counts = numbers["class_names"], numbers["counts"]
    splits = list(counts)
    lines = [
        f"# Data report: {numbers['source']}",
        "",
        f"{len(names)} classes; images fed to models at {numbers['image_size_fed'][0]}x{numbers['image_size_fed'][1]}; "
        + ", ".join(f"{s}: {n:,}" for s, n in numbers["sizes"].items()) + " images.",
        "",
        "## Images per class",
        "",
        f"![class counts]({figures['class_counts']})",
        "",
        _table(["class", *splits, "total"],
               [[c, *(f"{counts[s][k]:,}" for s in splits), f"{numbers['total_per_class'][k]:,}"]
                for k, c in enumerate(names)]
               + [["**all**", *(f"{sum(counts[s]):,}" for s in splits), f"{sum(numbers['total_per_class']):,}"]]),
        "",
        "## Samples",
        "",
        f"![samples per class]({figures['samples']})",
        "",
        "## Per-channel mean and std (0..255, every pixel)",
        "",
        _table(["split", "mean R", "mean G", "mean B", "std R", "std G", "std B"],
               [[s, *(f"{v:.2f}" for v in st["mean"]), *(f"{v:.2f}" for v in st["std"])]
                for s, st in numbers["channel_stats"].items()]),
        "",
        "## Image sizes as stored" + (" (from file headers)" if numbers["files"] else ""),
        "",
        f"![image sizes]({figures['image_sizes']})",
        "",
        *_orientation(numbers),
        _table(["split", "distinct sizes", "height min/median/max", "width min/median/max", "most common (h x w: n)"],
               [[s, v["distinct"], "{min}/{median:g}/{max}".format(**v["height"]),
                 "{min}/{median:g}/{max}".format(**v["width"]),
                 ", ".join(f"{h}x{w}: {n:,}" for h, w, n in v["most_common"][:3])]
                for s, v in numbers["image_sizes"].items()]),
        "",
        "## Exact duplicates (SHA-1 of " + ("file bytes" if numbers["files"] else "pixels") + ")",
        "",
        _table(["splits", "duplicates"],
               [[f"within {s}", n] for s, n in numbers["duplicates"]["within"].items()]
               + [[f"{pair} (images of the second also in the first)", v["count"]]
                  for pair, v in numbers["duplicates"]["between"].items()]),
    ]
    examples = [(pair, a, b) for pair, v in numbers["duplicates"]["between"].items() for a, b in v["examples"]]
    if examples:
        lines += ["", "Examples:", ""] + [f"- {pair}: `{a}` = `{b}`" for pair, a, b in examples]
    if numbers["notes"]:
        lines += ["", "## Source notes", "", "```", json.dumps(numbers["notes"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def write_data_report(dataset, out_dir, samples_per_class=8, seed=0):
    """Figures, report.md and report.json for a built Dataset; returns {"report_path", "numbers"}."""
    if dataset.info.task != "multiclass":
        raise DataError(
            f"kerasclf data-report counts images per class of multiclass data; {dataset.info.source!r} is a "
            f"{dataset.info.task} data set (multi-hot labels or masks), which it does not profile yet."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = profile(dataset)
    names = numbers["class_names"]
    figures = {
        "class_counts": plot_class_counts(numbers["counts"], names, out / "class_counts.png"),
        "samples": plot_samples_per_class(dataset.train, names, out / "samples_per_class.png", samples_per_class, seed),
        "image_sizes": plot_image_sizes(numbers["image_size_counts"], out / "image_sizes.png", numbers["files"]),
    }
    relative = {k: Path(v).name for k, v in figures.items()}
    (out / "report.md").write_text(_markdown(numbers, relative))
    (out / "report.json").write_text(json.dumps({**numbers, "figures": relative}, indent=2) + "\n")
    return {"report_path": str(out / "report.md"), "numbers": numbers}


def default_out_dir(source, log_dir="logs"):
    """logs/data-report-<name>: the registered name, or folder-<last folder name>."""
    name = source.split(":", 1)[-1].rstrip("/").split("/")[-1] if source.startswith("folder:") else source
    prefix = "folder-" if source.startswith("folder:") else ""
    return Path(log_dir) / f"data-report-{prefix}{name}"
