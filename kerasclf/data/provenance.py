"""Which images formed a run's train/val/test: `splits.json` in the run directory, and the
checks that let `kerasclf evaluate` promise its val/test images were not trained on.

splits.json holds, per split, the image count, a SHA-256 of its pixels and labels (in split
order), and for folder sources the files' paths relative to the folder. Evaluation of the
run's own data rebuilds the split from config.yaml and compares:
- same files and pixels: the split is the one recorded;
- the folder changed since training (files added, so the seeded carve moved): the recorded
  files are picked out of the rebuilt data, and a message says so;
- a recorded file missing or changed, or a built-in data set that gives other pixels: refused.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kerasclf.data import FOLDER_PREFIX
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

FILENAME = "splits.json"
SPLITS = ("train", "val", "test")


def folder_root(source):
    """The absolute folder of a folder:/path source, else None."""
    if not source.startswith(FOLDER_PREFIX):
        return None
    return os.path.abspath(os.path.expanduser(source[len(FOLDER_PREFIX):]))


def same_data(source_a, source_b):
    """Whether two data specs name the same data (folders compared by absolute path)."""
    root_a, root_b = folder_root(source_a), folder_root(source_b)
    if root_a or root_b:
        return root_a is not None and root_b is not None and os.path.realpath(root_a) == os.path.realpath(root_b)
    return source_a == source_b


def digest(split):
    """SHA-256 of a split's pixels and labels, in split order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(split.x).tobytes())
    h.update(np.asarray(split.y, np.int64).tobytes())
    return h.hexdigest()


def relative_paths(split, root):
    if split.paths is None or root is None:
        return None
    return [os.path.relpath(os.path.abspath(p), root) for p in split.paths]


def split_record(split, root):
    return {"count": len(split), "sha256": digest(split), "files": relative_paths(split, root)}


def write_splits(run_dir, cfg, data):
    """Write <run_dir>/splits.json for the dataset the run trains on."""
    root = folder_root(cfg.data.source)
    record = {
        "source": cfg.data.source,
        "folder": root,
        "seed": cfg.seed,
        "classes": list(data.info.class_names),
        "splits": {name: split_record(s, root) for name in SPLITS if (s := data.split(name)) is not None},
    }
    # ensure_ascii (the default) keeps file names that are not UTF-8 as \udcxx escapes
    Path(run_dir, FILENAME).write_text(json.dumps(record, indent=1) + "\n")


def read_splits(run_dir):
    path = Path(run_dir, FILENAME)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable splits record ({exc}); it may have been edited or truncated.") from None


def recorded_split(dataset, record, name):
    """The split `name` exactly as `record` has it, taken from `dataset` (rebuilt from the run's
    config). Returns (split, note) where note is None when nothing changed."""
    want = record["splits"].get(name)
    if want is None:
        return None, None
    current = dataset.split(name)
    if current is not None and len(current) == want["count"] and digest(current) == want["sha256"]:
        return current, None
    source = record["source"]
    if want.get("files") is None:
        raise DataError(
            f"The {name} split of {source!r} is not the one this run recorded in {FILENAME} (its pixels "
            "differ: another version of the data set or of kerasclf's loader?), so it cannot be known "
            f"to hold no training image. Evaluate with --data {source} --split all to score all of it."
        )
    root = record.get("folder") or folder_root(source)
    pool = {}
    for s in (dataset.train, dataset.val, dataset.test):
        if s is not None:
            for i, rel in enumerate(relative_paths(s, root)):
                pool[rel] = (s, i)
    missing = [f for f in want["files"] if f not in pool]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            f"{len(missing)} of the {want['count']} {name} images this run recorded are gone from {root!r} "
            f"(or no longer readable): {shown}. The {name} split cannot be rebuilt; evaluate on a separate "
            "folder with --data folder:/path (all of it is used)."
        )
    x = np.stack([pool[f][0].x[pool[f][1]] for f in want["files"]])
    y = np.array([pool[f][0].y[pool[f][1]] for f in want["files"]], np.int32)
    paths = [pool[f][0].paths[pool[f][1]] for f in want["files"]]
    chosen = Split(x, y, paths)
    if digest(chosen) != want["sha256"]:
        raise DataError(
            f"Images of the recorded {name} split in {root!r} changed since training (same names, other "
            "pixels or class folders), so they may now include training images. Evaluate on a separate "
            "folder with --data folder:/path instead."
        )
    note = (
        f"The folder {root!r} changed since training (its {name} split would now be carved differently); "
        f"evaluating the {want['count']} {name} images recorded in {FILENAME}."
    )
    return chosen, note


def concatenate(dataset):
    """Every image of the dataset (train, val and test) as one split: `--split all`."""
    parts = [s for s in (dataset.train, dataset.val, dataset.test) if s is not None and len(s)]
    paths = None if any(p.paths is None for p in parts) else [q for p in parts for q in p.paths]
    return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), paths)
