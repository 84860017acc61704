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

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from kerasclf.data import FOLDER_PREFIX
from kerasclf.data.files import FileImages, is_streamed
from kerasclf.data.splits import Split, channel_stats
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


CHUNK_BYTES = 16 * 2**20  # decoded images held at a time while hashing files still on disk


def digest(split):
    """SHA-256 of a split's pixels and labels, in split order. Files still on disk (FileImages,
    a streamed split) are decoded a chunk at a time: the same hash, without the whole split in memory."""
    h = hashlib.sha256()
    x = split.x
    if is_streamed(split):
        step = max(1, CHUNK_BYTES // max(1, int(np.prod(x.shape[1:]))))
        for start in range(0, len(x), step):
            h.update(memoryview(np.ascontiguousarray(np.asarray(x[start:start + step]))))
    else:
        h.update(memoryview(np.ascontiguousarray(x)))  # no bytes copy of the whole split
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


EVALUATE_REMEDY = "evaluate on a separate folder with --data folder:/path (all of it is used)"


def recorded_split(dataset, record, name, remedy=None):
    """The split `name` exactly as `record` has it, taken from `dataset` (rebuilt from the run's
    config). Returns (split, note) where note is None when nothing changed. `remedy`: what the
    user can do instead when the recorded split cannot be rebuilt (said in the error)."""
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
            f"to hold no training image; {remedy or f'evaluate with --data {source} --split all to score all of it'}."
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
            f"(or no longer readable): {shown}. The {name} split cannot be rebuilt; {remedy or EVALUATE_REMEDY}."
        )
    if all(is_streamed(pool[f][0]) for f in want["files"]):  # files stay on disk: pick paths, decode nothing
        x = FileImages([pool[f][0].x.paths[pool[f][1]] for f in want["files"]], pool[want["files"][0]][0].x.image_size,
                       verified=True)
    else:
        x = np.stack([pool[f][0].x[pool[f][1]] for f in want["files"]])
    # labels keep their dtype and shape: class indices, multi-hot vectors or masks
    y = np.stack([pool[f][0].y[pool[f][1]] for f in want["files"]]).astype(dataset.train.y.dtype, copy=False)
    paths = [pool[f][0].paths[pool[f][1]] for f in want["files"]]
    chosen = Split(x, y, paths)
    if digest(chosen) != want["sha256"]:
        raise DataError(
            f"Images of the recorded {name} split in {root!r} changed since training (same names, other "
            f"pixels or class folders), so they may now include training images; {remedy or EVALUATE_REMEDY}."
        )
    note = (
        f"The folder {root!r} changed since training (its {name} split would now be carved differently); "
        f"evaluating the {want['count']} {name} images recorded in {FILENAME}."
    )
    return chosen, note


def concatenate(dataset):
    """Every image of the dataset (train, val and test) as one split: `--split all`."""
    parts = [s for s in (dataset.train, dataset.val, dataset.test) if s is not None and len(s)]
    if len(parts) == 1:  # other data is evaluated uncarved: its one split, not a second copy of its images
        return parts[0]
    paths = None if any(p.paths is None for p in parts) else [q for p in parts for q in p.paths]
    return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), paths)


RESUME_REMEDY = ("put the recorded files back as they were to resume, or start a new run on the folder as it "
                 "is now (kerasclf train --config <run>/config.yaml)")


def resume_dataset(dataset, record, seed):
    """The data of a resumed run: exactly the splits `record` (its splits.json) holds, taken
    from `dataset` (rebuilt from the run's config), so that a changed folder can neither move
    images between train and val nor change the schedule's step count. Files added since are
    left out with a warning; a class set that changed, or a recorded file missing or changed,
    is refused. The train split's channel statistics are recomputed from the recorded split."""

    classes = list(dataset.info.class_names)
    if classes != list(record["classes"]):
        raise DataError(
            f"The classes of {record['source']!r} changed since the run started: it recorded "
            f"{', '.join(record['classes'])}, the data now has {', '.join(classes)}. A resumed run must train "
            f"the same classes (the model has one output per class); {RESUME_REMEDY}."
        )
    remedy = RESUME_REMEDY
    if record.get("splits", {}).get("train", {}).get("files") is None:
        remedy = ("resume with the data the run started on, or start a new run "
                  "(kerasclf train --config <run>/config.yaml)")
    chosen = {name: recorded_split(dataset, record, name, remedy)[0] for name in SPLITS}
    root = record.get("folder") or folder_root(record["source"])
    recorded = {f for want in record["splits"].values() for f in (want.get("files") or [])}
    added = sorted(
        rel for s in (dataset.train, dataset.val, dataset.test) if s is not None
        for rel in (relative_paths(s, root) or []) if rel not in recorded
    )
    if recorded and added:
        shown = ", ".join(added[:5]) + (f" and {len(added) - 5} more" if len(added) > 5 else "")
        warnings.warn(
            f"{len(added)} image file(s) were added to {root!r} since the run started ({shown}); the resumed "
            f"run trains and validates on the files recorded in {FILENAME} and leaves them out. Start a new "
            "run to use them.",
            stacklevel=2,
        )
    train = chosen["train"]
    mean, std = channel_stats(train.x, max_images=2000 if is_streamed(train) else 10000, seed=seed)
    info = dataclasses.replace(dataset.info, mean=mean, std=std)
    return dataclasses.replace(dataset, info=info, train=train, val=chosen["val"], test=chosen["test"])
