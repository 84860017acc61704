"""Training step time with an auxiliary metric loss, as a ratio to cross-entropy alone.

Three variants of the same model, built and compiled as `kerasclf train` does: CE alone,
CE + center loss, CE + triplet loss (semi-hard mining, the costliest: a B x B x B mask).
Random uint8 32x32x3 images and 10 classes; after a warm-up fit (tracing/compilation),
each variant's steady time per step is the median over `--repeats` timed fits of `--steps`
steps, the variants interleaved so that load on a shared machine hits all alike. The goal
is <= 1.15x for both. Prints one JSON line.

    python bench/aux_loss_step.py [--model cnn] [--batch-size 128] [--steps 10] [--repeats 5]
"""

import argparse
import json
import os
import statistics
import sys
import time

VARIANTS = {
    "ce": [],
    "center": ["loss.aux=center", "loss.aux_weight=0.1"],
    "triplet": ["loss.aux=triplet", "loss.aux_weight=1.0", "loss.mining=semi_hard"],
}
MODELS = {"cnn": ["model.name=cnn"], "cnn_bn": ["model.name=cnn", "model.batch_norm=true"],
          "resnet9": ["model.name=resnet9"], "mlp": ["model.name=mlp"]}


def build(variant, model_key, batch_size, steps, seed=0):
    import keras

    from kerasclf.config import load_config
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model
    from kerasclf.training import aux as aux_loss
    from kerasclf.training.run import compile_model

    cfg = load_config(None, [*MODELS[model_key], *VARIANTS[variant], f"data.batch_size={batch_size}",
                             f"seed={seed}", "optim.name=sgd", "optim.lr=0.01"])
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, DatasetInfo("random", [str(i) for i in range(10)], (32, 32), 3))
    if variant != "ce":
        model = aux_loss.AuxTraining(cfg, model, 10).fit_model()
    compile_model(model, cfg, steps_per_epoch=steps)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", choices=sorted(MODELS))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int32)
    models = {v: build(v, args.model, args.batch_size, args.steps) for v in VARIANTS}
    for model in models.values():  # warm-up: tracing and compilation
        model.fit(x[: 2 * args.batch_size], y[: 2 * args.batch_size], batch_size=args.batch_size, epochs=1,
                  verbose=0, shuffle=False)
    times = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
            times[variant].append((time.perf_counter() - start) / args.steps)
    step = {v: statistics.median(t) for v, t in times.items()}
    print(json.dumps({
        "bench": "aux_loss_step",
        "backend": keras.backend.backend(),
        "model": args.model,
        "batch_size": args.batch_size,
        "mining": "semi_hard",
        "step_ms": {v: round(1000 * s, 2) for v, s in step.items()},
        "ratio_center": round(step["center"] / step["ce"], 3),
        "ratio_triplet": round(step["triplet"] / step["ce"], 3),
        "goal": 1.15,
    }))


if __name__ == "__main__":
    main()
