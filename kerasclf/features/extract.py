"""`kerasclf features`: penultimate embeddings (the input of the task head) of every split.

The extractor is either a registered backbone (`--backbone`, with `--weights imagenet`, a
local weights file, or a kerasclf checkpoint whose matching layers are copied in) or a
kerasclf checkpoint as it is (`--weights run/best.keras` without `--backbone`: the exact
network, preprocessing included). With a checkpoint that sits in its run directory and no
`--data`, the splits are the run's own (config.yaml's seed and carve, checked against
splits.json), so features of its test split come from images the checkpoint never trained on.

Output: one .npz with `<split>_features` (float32, N x D), `<split>_labels` (int),
`<split>_paths` (for file sources), `class_names`, and `meta` (a JSON string: backbone,
weights, data, image size, feature size, seconds).
"""

import io
import json
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from kerasclf.checkpoint import labels_of, load_checkpoint, transfer_from_checkpoint
from kerasclf.config import load_config
from kerasclf.data import build_dataset
from kerasclf.data.provenance import FILENAME, read_splits, recorded_split, same_data
from kerasclf.errors import ConfigError, DataError
from kerasclf.models import build_model, embedding_model, is_checkpoint
from kerasclf.models.registry import MODELS
from kerasclf.runs.atomic import atomic_open

SPLITS = ("train", "val", "test")


def extractor_and_data(backbone=None, weights=None, data=None, overrides=(), data_dir=None):
    """(feature extractor, Dataset, description) for the command's options."""
    if backbone is None and not is_checkpoint(weights):
        raise ConfigError(
            "Name a backbone (--backbone NAME, one of `kerasclf models`) or a kerasclf checkpoint "
            "(--weights logs/<run>/best.keras) to take the features from."
        )
    if backbone is None:
        return _from_checkpoint(weights, data, overrides, data_dir)
    return _from_registry(backbone, weights, data, overrides, data_dir)


def _from_checkpoint(path, data, overrides, data_dir):
    model, labels = load_checkpoint(path)
    run_config = Path(path).parent / "config.yaml"
    own = data is None or (run_config.is_file() and same_data(load_config(run_config).data.source, data))
    if run_config.is_file():
        cfg = load_config(run_config, [*overrides, *([f"data.source={data}"] if data and not own else [])])
    else:
        cfg = load_config(None, [f"data.source={data or labels.source}", *overrides])
        if own:
            cfg.data.classes = list(labels.class_names)
            warnings.warn(
                f"{path} has no run directory beside it (config.yaml, {FILENAME}): its data "
                f"{labels.source!r} is carved again with seed {cfg.seed}, so the val/test features may come from "
                "images the checkpoint was trained on.", stacklevel=3)
    if data_dir:
        cfg.data.data_dir = data_dir
    cfg.data.image_size = list(labels.image_size)  # the size the network was trained on
    dataset = build_dataset(cfg.data, cfg.seed)
    if own and run_config.is_file():
        dataset = _recorded_splits(dataset, Path(path).parent)
    about = {"backbone": model.name, "weights": str(path), "checkpoint_classes": list(labels.class_names)}
    return embedding_model(model), dataset, about


def _recorded_splits(dataset, run_dir):
    """val/test exactly as splits.json recorded them (an error when that cannot be done)."""
    record = read_splits(run_dir)
    if record is None:
        return dataset
    for name in ("val", "test"):
        chosen, note = recorded_split(dataset, record, name)
        if chosen is not None:
            if note:
                warnings.warn(note, stacklevel=4)
            setattr(dataset, name, chosen)
    return dataset


def _from_registry(backbone, weights, data, overrides, data_dir):
    if not data:
        raise ConfigError("--data is required with --backbone: a registered data set (`kerasclf datasets`) or folder:/path.")
    entry = MODELS.get(backbone)
    if weights is None:
        weights = "imagenet" if entry.meta.get("pretrained") else "none"
    cfg = load_config(None, [f"data.source={data}", f"model.name={backbone}", f"model.weights={weights}", *overrides])
    if data_dir:
        cfg.data.data_dir = data_dir
    dataset = build_dataset(cfg.data, cfg.seed)
    model = build_model(cfg, dataset.info)
    if is_checkpoint(weights):
        transfer_from_checkpoint(model, weights)  # an error when no layer outside the head matches
    labels_of(model)
    return embedding_model(model), dataset, {"backbone": backbone, "weights": str(weights)}


def embed_split(extractor, split, batch_size=128, label=None, verbose=1):
    """(N, D) float32 embeddings of a split, batch by batch, with a progress bar (on a
    terminal; into a pipe or log file one line when the split is done)."""
    if verbose and not sys.stdout.isatty():
        verbose = 2
    n = len(split)
    bar = keras.utils.Progbar(n, verbose=verbose, unit_name="image") if verbose else None
    out = []
    for start in range(0, n, batch_size):
        x = np.asarray(split.x[start:start + batch_size])  # streamed (file) splits decode here
        out.append(np.asarray(extractor.predict_on_batch(x), dtype=np.float32).reshape(len(x), -1))
        if bar:
            bar.update(min(start + batch_size, n))
    if label and verbose:
        print(f"{label}: {n} images -> {out[0].shape[1] if out else 0} features", flush=True)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def extract_features(out, backbone=None, weights=None, data=None, overrides=(), data_dir=None, batch_size=128,
                     verbose=1):
    """Write the .npz at `out`; returns its meta dict."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {batch_size}.")
    extractor, dataset, about = extractor_and_data(backbone, weights, data, overrides, data_dir)
    start = time.perf_counter()
    arrays, counts = {}, {}
    for name in SPLITS:
        split = dataset.split(name)
        if split is None or len(split) == 0:
            continue
        arrays[f"{name}_features"] = embed_split(extractor, split, batch_size, label=name, verbose=verbose)
        arrays[f"{name}_labels"] = np.asarray(split.y, np.int64)
        if split.paths is not None:
            arrays[f"{name}_paths"] = np.asarray([str(p) for p in split.paths])
        counts[name] = len(split)
    if not counts:
        raise DataError(f"The data {dataset.info.source!r} has no images to embed.")
    dim = next(a.shape[1] for k, a in arrays.items() if k.endswith("_features"))
    meta = {**about, "data": dataset.info.source, "image_size": list(dataset.info.image_size),
            "feature_size": int(dim), "counts": counts, "seconds": round(time.perf_counter() - start, 1)}
    arrays["class_names"] = np.asarray(dataset.info.class_names)
    arrays["meta"] = np.asarray(json.dumps(meta))
    save_npz(out, arrays)
    return meta


def save_npz(path, arrays):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())
    return str(path)


def load_features(path):
    """{split: (features, labels)}, class names, meta from a `kerasclf features` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Features file {str(path)!r} does not exist; write one with `kerasclf features ... --out {path}`.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = dict(npz)
    except (OSError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not a features file written by `kerasclf features` ({exc}).") from None
    if "class_names" not in files or "train_features" not in files:
        raise DataError(
            f"{str(path)!r} has no class_names / train_features arrays: it was not written by `kerasclf features`."
        )
    splits = {s: (files[f"{s}_features"], files[f"{s}_labels"]) for s in SPLITS if f"{s}_features" in files}
    meta = json.loads(str(files["meta"])) if "meta" in files else {}
    return splits, [str(c) for c in files["class_names"]], meta
