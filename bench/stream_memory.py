"""Peak memory per epoch of a folder run: streamed from disk (data.stream) vs decoded into memory.

Each mode trains the same small CNN with `kerasclf.training.run.train` in its own process;
a thread samples the process's RSS every 20 ms and a callback keeps each epoch's peak.
The streamed run uses `data.stream: auto` with a `data.memory_fraction` below the folder's
decoded size, so that the automatic choice is what is measured.

    python bench/stream_memory.py [FOLDER] [--per-class 2000] [--image-size 64] [--epochs 3]
FOLDER (root/<class>/*.jpg) defaults to $KERASCLF_BENCH_FOLDER, then /work/data/train.
Prints one JSON line (a line with "skipped" and the reason when the folder is absent).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_FOLDER = "/work/data/train"


def _subset(root, per_class, out):
    """out/<class>/ with links to the first `per_class` files of each class of root."""
    for class_dir in sorted(d for d in Path(root).iterdir() if d.is_dir()):
        (out / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:per_class]:
            (out / class_dir.name / path.name).symlink_to(path.resolve())
    return out


def _measure(folder, mode, image_size, epochs, log_dir):
    """Train in this process; {"epoch_peak_rss_mb": [...], ...}."""
    import keras
    import psutil

    from kerasclf.config import load_config
    from kerasclf.data.stream import decoded_bytes
    from kerasclf.training import run

    process = psutil.Process()
    peak = {"now": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["now"] = max(peak["now"], process.memory_info().rss)
            time.sleep(0.02)

    epoch_peaks = []

    class EpochPeak(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            peak["now"] = process.memory_info().rss

        def on_epoch_end(self, epoch, logs=None):
            epoch_peaks.append(round(peak["now"] / 2**20))

    count = sum(1 for _ in Path(folder).rglob("*.jpg"))
    decoded = decoded_bytes(count, (image_size, image_size))
    available = psutil.virtual_memory().available
    # streamed: a share below the decoded size, so "auto" must stream; in memory: forced off
    overrides = [
        f"data.source=folder:{folder}", f"data.image_size=[{image_size},{image_size}]", "data.batch_size=128",
        "data.val_fraction=0.1", f"train.epochs={epochs}", "train.verbose=0", f"train.log_dir={log_dir}",
        "train.evaluate_after=false", "model.name=cnn", "model.filters=[16,32]", "model.convs_per_block=1",
        "model.dense=[64]",
    ]
    if mode == "streamed":
        overrides += ["data.stream=auto", f"data.memory_fraction={decoded / available / 2:.6f}"]
    else:
        overrides += ["data.stream=false"]
    cfg = load_config(None, overrides)
    original = run._callbacks
    run._callbacks = lambda *a, **k: original(*a, **k) + [EpochPeak()]
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    _, metrics = run.train(cfg)
    stop.set()
    return {
        "mode": mode,
        "streamed": metrics["streamed"],
        "images": count,
        "decoded_mb": round(decoded / 2**20),
        "epoch_peak_rss_mb": epoch_peaks,
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "best_val_accuracy": metrics["best_val_accuracy"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=os.environ.get("KERASCLF_BENCH_FOLDER", DEFAULT_FOLDER))
    parser.add_argument("--per-class", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mode", choices=["streamed", "in_memory"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:  # the child process: one measurement
        with tempfile.TemporaryDirectory() as logs:
            print(json.dumps(_measure(args.folder, args.mode, args.image_size, args.epochs, logs)))
        return 0
    if not Path(args.folder).is_dir():
        reason = f"no image folder at {args.folder!r} (give FOLDER or set KERASCLF_BENCH_FOLDER)"
        print(json.dumps({"bench": "stream_memory", "skipped": reason}))
        return 0
    results = {"bench": "stream_memory", "per_class": args.per_class, "image_size": args.image_size}
    with tempfile.TemporaryDirectory() as tmp:
        folder = _subset(args.folder, args.per_class, Path(tmp) / "subset")
        for mode in ("streamed", "in_memory"):
            out = subprocess.run(
                [sys.executable, __file__, str(folder), "--mode", mode, "--image-size", str(args.image_size),
                 "--epochs", str(args.epochs)],
                capture_output=True, text=True, check=True,
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
