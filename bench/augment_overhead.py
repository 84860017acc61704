"""Seconds per epoch of the small CNN with and without in-model augmentation; one JSON line.

    KERAS_BACKEND=jax python bench/augment_overhead.py [--images 10000] [--batch 128]
    python bench/augment_overhead.py --folder /path/to/cifar10-jpeg/train

Random uint8 32x32x3 images (or, with --folder, the first --images of a class-folder tree
such as the CIFAR-10 JPEG copy), the model of configs/cifar10/cnn_bn_do.yaml built by
kerasclf.models.build_model; "aug" is augment.flip + augment.crop_padding=4. Each variant
trains one warm-up epoch (compilation), then `--epochs` timed epochs, alternating between the
two models; the JSON line gives the median seconds per timed epoch of each, the resolved
jit_compile of each model and the ratio aug / none. `--jit-compile true` forces XLA where
"auto" would not use it (TensorFlow on CPU).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class EpochTimer:
    def __init__(self):
        self.times = []

    def callback(self):
        import keras

        timer = self

        class _Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.times.append(time.perf_counter() - self.start)

        return _Timer()


def device_name():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}:{getattr(d, 'device_kind', '')}"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"gpu:{details.get('device_name', gpus[0].name)}"
        return "cpu"
    if backend == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return backend


def build(augment, args):
    import keras

    from kerasclf.config import AugmentConfig, load_config
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model

    keras.utils.set_random_seed(0)
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "cifar10" / "cnn_bn_do.yaml")
    cfg.augment = AugmentConfig(**augment)
    info = DatasetInfo(source="random", class_names=[str(i) for i in range(10)], image_size=(32, 32))
    model = build_model(cfg, info)
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=args.jit_compile,
    )
    return model


def fit_epoch(model, x, y, args):
    timer = EpochTimer()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=[timer.callback()])
    return timer.times[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--folder", default=None, help="class-folder tree of real images (default: random pixels)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up one")
    parser.add_argument(
        "--jit-compile", default="auto", type=lambda v: {"true": True, "false": False}.get(v.lower(), v)
    )
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    if args.folder:
        from kerasclf.data.sources.folder import load_folder

        train = load_folder(args.folder, (32, 32)).splits["train"]
        pick = rng.permutation(len(train))[: args.images]
        x, y = train.x[pick], train.y[pick]
    else:
        x = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, size=(args.images,)).astype("int32")

    models = {"none": build({}, args), "aug": build({"flip": True, "crop_padding": 4}, args)}
    warm = {name: fit_epoch(model, x, y, args) for name, model in models.items()}
    # Timed epochs alternate between the variants, so a change of machine load hits both.
    times = {name: [] for name in models}
    for _ in range(args.epochs):
        for name, model in models.items():
            times[name].append(fit_epoch(model, x, y, args))
    none_s, aug_s = (statistics.median(times[name]) for name in ("none", "aug"))
    print(
        json.dumps(
            {
                "bench": "augment_overhead",
                "backend": keras.backend.backend(),
                "keras_backend_env": os.environ.get("KERAS_BACKEND"),
                "device": device_name(),
                "model": "configs/cifar10/cnn_bn_do.yaml",
                "data": args.folder or "random uint8",
                "images": len(x),
                "batch": args.batch,
                "timed_epochs": args.epochs,
                "jit_compile_arg": args.jit_compile,
                "jit_compile_none": bool(models["none"].jit_compile),
                "jit_compile_aug": bool(models["aug"].jit_compile),
                "warmup_s_none": round(warm["none"], 3),
                "warmup_s_aug": round(warm["aug"], 3),
                "sec_per_epoch_none": round(none_s, 3),
                "sec_per_epoch_flip_crop4": round(aug_s, 3),
                "ratio": round(aug_s / none_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
