"""Input-pipeline throughput on one JPEG folder (root/<class>/*.jpg), images/s.

(a) in_memory: kerasclf.data.sources.folder.load_folder (parallel decode into one array), then
    epochs of batches from kerasclf.data.pipeline (the training run's tf.data feed);
(b) stream:    kerasclf.data.stream.folder_dataset (tf.data decode, in-memory cache);
(c) keras:     keras.utils.image_dataset_from_directory (tf.data decode, no cache).
Epochs 1 and 2 of (b) and (c): epoch 2 of (b) reads its cache.

    python bench/pipeline.py [FOLDER] [--batch-size 256]
FOLDER defaults to $KERASCLF_BENCH_FOLDER, then /work/data/train. Prints one JSON line
(a line with "skipped" and the reason when the folder is absent).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_FOLDER = "/work/data/train"


def _epoch(dataset):
    """(seconds, images) for one pass over a dataset of (images, labels) batches."""
    start, count = time.perf_counter(), 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return time.perf_counter() - start, count


def _rate(seconds, count):
    return round(count / seconds, 1) if seconds > 0 else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=os.environ.get("KERASCLF_BENCH_FOLDER", DEFAULT_FOLDER))
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    root = Path(args.folder)
    if not root.is_dir():
        reason = f"no image folder at {str(root)!r} (give FOLDER or set KERASCLF_BENCH_FOLDER)"
        print(json.dumps({"bench": "pipeline", "skipped": reason}))
        return 0

    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        print(json.dumps({"bench": "pipeline", "skipped": "needs TensorFlow (tf.data); install kerasclf[tf]"}))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from kerasclf.data.pipeline import fit_inputs
    from kerasclf.data.sources.folder import load_folder
    from kerasclf.data.stream import folder_dataset

    # (a) in-memory: decode once (tf.data, or PIL threads without TensorFlow), then epochs of batches from memory.
    start = time.perf_counter()
    raw = load_folder(root)
    decode_s = time.perf_counter() - start
    split, classes = raw.splits["train"], list(raw.class_names)
    if len(raw.splits) > 1:
        reason = f"{str(root)!r} has train/val/test folders; give its train folder"
        print(json.dumps({"bench": "pipeline", "skipped": reason}))
        return 0
    size = split.x.shape[1:3]
    result = {
        "bench": "pipeline",
        "folder": str(root),
        "images": len(split),
        "image_size": list(size),
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "in_memory_decode_images_per_s": _rate(decode_s, len(split)),
    }
    feed = fit_inputs(split, args.batch_size, training=True, num_classes=len(classes), one_hot_labels=False)["x"]
    batches_s, n = _epoch(feed)
    result["in_memory_epoch_images_per_s"] = _rate(batches_s, n)
    result["in_memory_first_epoch_images_per_s"] = _rate(decode_s + batches_s, n)

    # (b) streaming tf.data with an in-memory cache.
    stream = folder_dataset(split.paths, split.y, size, args.batch_size, training=True, seed=0, cache=True)
    for epoch in (1, 2):
        result[f"stream_epoch{epoch}_images_per_s"] = _rate(*_epoch(stream))

    # (c) Keras's own directory loader.
    keras_ds = keras.utils.image_dataset_from_directory(
        root, labels="inferred", label_mode="int", class_names=classes, image_size=tuple(size),
        batch_size=args.batch_size, shuffle=True, seed=0, verbose=False,
    )
    for epoch in (1, 2):
        result[f"keras_epoch{epoch}_images_per_s"] = _rate(*_epoch(keras_ds))
    result["tensorflow"] = tf.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
