"""`kerasclf predict`: a checkpoint's top-k classes for image files and folders.

Files are decoded with the size and resize policy the model was trained with, a chunk at a
time (memory stays flat for any number of files); unreadable files are listed, not fatal.
"""

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasclf.checkpoint import load_checkpoint
from kerasclf.config import load_config
from kerasclf.console import display
from kerasclf.errors import ConfigError
from kerasclf.evaluation.figures import image_grid as image_grid  # public after issue 16's re-cut
from kerasclf.features.images import decode_chunk, find_images
from kerasclf.runs.atomic import atomic_open

CHUNK = 1024  # files decoded at a time


@dataclass
class Predictions:
    class_names: list
    paths: list = field(default_factory=list)  # the readable files, in order
    probs: np.ndarray | None = None  # (N, classes) float32
    unreadable: list = field(default_factory=list)  # "path (reason)"

    def top(self, k):
        """(indices (N, k), probabilities (N, k)), most probable first."""
        k = min(k, len(self.class_names))
        index = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return index, np.take_along_axis(self.probs, index, axis=1)


def resize_policy(checkpoint):
    """data.resize of the run the checkpoint comes from (its config.yaml), else the default."""
    path = Path(checkpoint).parent / "config.yaml"
    return load_config(path).data.resize if path.is_file() else "crop"


def predict_files(checkpoint, inputs, batch_size=256, progress=None):
    """Predictions for every image file under `inputs` (files or folders, recursively)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {batch_size}.")
    model, labels = load_checkpoint(checkpoint)
    found = find_images(inputs)
    size, policy = tuple(labels.image_size), resize_policy(checkpoint)
    result = Predictions(list(labels.class_names), unreadable=list(found.unreadable))
    probs = []
    for start in range(0, len(found.paths), CHUNK):
        chunk = found.paths[start:start + CHUNK]
        images, kept, bad = decode_chunk(chunk, size, policy)
        result.unreadable += bad
        if kept:
            probs.append(model.predict(images, batch_size=batch_size, verbose=0))
            result.paths += [chunk[i] for i in kept]
        if progress:
            progress(min(start + CHUNK, len(found.paths)), len(found.paths))
    n = len(result.class_names)
    result.probs = np.concatenate(probs).astype(np.float32) if probs else np.zeros((0, n), np.float32)
    return result


def write_csv(result, path, top_k):
    """path, then top-k (class, probability) pairs per readable file; unreadable files last,
    with their reason in an `error` column."""
    index, probs = result.top(top_k)
    k = index.shape[1]
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["path"]
        for j in range(1, k + 1):
            header += [f"class_{j}", f"prob_{j}"]
        writer.writerow(header + ["error"])
        for p, row_i, row_p in zip(result.paths, index, probs):
            cells = [display(p)]
            for i, q in zip(row_i, row_p):
                cells += [result.class_names[i], f"{q:.6f}"]
            writer.writerow(cells + [""])
        for text in result.unreadable:
            name, _, reason = text.partition(" (")
            writer.writerow([name] + [""] * (2 * k) + [reason.rstrip(")")])
    return str(path)


def table_lines(result, top_k, limit=None):
    """Plain-text table: file, then "class 93.1%" for each of the top k."""
    index, probs = result.top(top_k)
    rows = [(display(p), "  ".join(f"{result.class_names[i]} {100 * q:.1f}%" for i, q in zip(ri, rp)))
            for p, ri, rp in zip(result.paths, index, probs)]
    shown = rows if limit is None else rows[:limit]
    width = min(max([len(r[0]) for r in shown] + [4]), 60)
    lines = [f"{'file':<{width}}  top {index.shape[1]}"] + [f"{p:<{width}}  {t}" for p, t in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more (all of them in the CSV)")
    return lines


def write_grid(result, path, size, policy="crop", max_images=36):
    """A PNG of the first `max_images` readable files, each titled "class 93.1%"."""
    paths = result.paths[:max_images]
    images, kept, _ = decode_chunk(paths, size, policy)
    top = result.probs[kept]  # result.paths[:max_images] are rows 0..max_images-1
    titles = [f"{result.class_names[p.argmax()]} {100 * p.max():.1f}%\n{Path(paths[i]).name[:18]}"
              for i, p in zip(kept, top)]
    return image_grid(list(images), titles, ["black"] * len(titles), path, f"Predictions ({len(kept)} images)")
