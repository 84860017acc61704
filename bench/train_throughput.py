"""Training throughput of the CIFAR-sized registered models, on random uint8 32x32x3 data.

Per model: first_epoch_s (a short first epoch: graph tracing / XLA compilation plus its
steps) and images_per_s over a following timed epoch (steady state), for the current
backend (KERAS_BACKEND) and the training run's own compile settings (jit_compile auto,
SGD). The model is built as `kerasclf train` builds it (preprocessing and flip + pad-crop
augmentation inside the model); airbench's whitening is initialised from the data first.
Prints one JSON line per model.

    python bench/train_throughput.py [--models mlp,cnn,...] [--batch-size 64]
                                     [--warmup-steps 2] [--steps 6]
Defaults keep the whole script under ~3 minutes on 2 CPU cores; use larger --steps and
--batch-size on an accelerator (e.g. --batch-size 1024 --steps 50).
"""

import argparse
import json
import os
import sys
import time

# name -> (model section, augment section)
MODELS = {
    "mlp": {"name": "mlp"},
    "cnn": {"name": "cnn"},
    "cnn_bn": {"name": "cnn", "batch_norm": True},
    "resnet9": {"name": "resnet9"},
    "airbench": {"name": "airbench"},
}
AUGMENT = {"flip": True, "crop_padding": 2}


def bench_model(key, batch_size, warmup_steps, steps, seed=0):
    import keras
    import numpy as np

    from kerasclf.config import from_dict
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model, load_builtin_models
    from kerasclf.training.run import compile_model

    cfg = from_dict({"model": dict(MODELS[key]), "augment": AUGMENT, "seed": seed,
                     "data": {"batch_size": batch_size},
                     "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}})
    keras.utils.set_random_seed(seed)
    info = DatasetInfo("random", [str(i) for i in range(10)], (32, 32), 3)
    rng = np.random.default_rng(seed)
    n = batch_size * max(warmup_steps, steps)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int32)
    model = build_model(cfg, info)
    if load_builtin_models().get(cfg.model.name).meta.get("needs_data"):
        from kerasclf.models.data_init import init_from_data

        init_from_data(model, x, seed=seed)
    compile_model(model, cfg, steps_per_epoch=steps)

    start = time.perf_counter()
    model.fit(x[: batch_size * warmup_steps], y[: batch_size * warmup_steps], batch_size=batch_size,
              epochs=1, verbose=0, shuffle=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x[: batch_size * steps], y[: batch_size * steps], batch_size=batch_size,
              epochs=1, verbose=0, shuffle=False)
    steady = time.perf_counter() - start
    return {
        "bench": "train_throughput",
        "model": key,
        "backend": keras.backend.backend(),
        "jit_compile": bool(model.jit_compile),
        "params": int(model.count_params()),
        "batch_size": batch_size,
        "first_epoch_s": round(first, 2),
        "first_epoch_steps": warmup_steps,
        "images_per_s": round(batch_size * steps / steady, 1),
        "steady_steps": steps,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps of the first (compiling) epoch")
    parser.add_argument("--steps", type=int, default=6, help="steps of the timed steady epoch")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    for key in keys:
        print(json.dumps(bench_model(key, args.batch_size, args.warmup_steps, args.steps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
