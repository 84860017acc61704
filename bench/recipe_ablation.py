"""airbench94's features in `make cifar-fast`, one at a time: held-out accuracy and seconds.

    python bench/recipe_ablation.py --folder /tmp/cifar/train --seeds 0 1 2
    python bench/recipe_ablation.py --variants base all --epochs 3 --limit-per-class 500

Each variant is configs/cifar10/fast.yaml trained on a class-folder copy of the CIFAR-10
train split (the shared JPEGs: `tar -xJf train.tar.xz -C /tmp/cifar`) with 10,000 images
held out (data.test_fraction 0.2, stratified, data.split_seed fixed so that every training
seed is scored on the same images) and kept out of every choice; one fresh `kerasclf train`
process per run. Prints one JSON line per run (held-out test accuracy with the config's TTA,
best validation accuracy, the one number a choice between variants may look at; training
seconds, wall seconds of the whole command; the Keras backend), then a markdown table per
variant: mean and spread (min-max) over the seeds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# airbench94's extras, each as (its value, the value that turns it off). configs/cifar10/fast.yaml
# has them all on (chosen with this script); "base" turns them all off, each named variant is
# base with that one feature back on, "all" is fast.yaml as it stands.
EXTRAS = {
    "lookahead": ("optim.lookahead_every=5", "optim.lookahead_every=0"),
    "alternate_flip": ("augment.flip_mode=alternate", "augment.flip_mode=random"),
    "whiten_bias_3": ("model.whiten_bias_epochs=3", "model.whiten_bias_epochs=null"),
    "bn_eps_1e-12": ("model.bn_epsilon=1e-12", "model.bn_epsilon=1e-5"),
    "warmup_from_0.2": ("optim.start_lr_fraction=0.2", "optim.start_lr_fraction=null"),
}
VARIANTS = {"base": [off for _, off in EXTRAS.values()]}
VARIANTS.update({name: [on if other == name else off for other, (on, off) in EXTRAS.items()] for name in EXTRAS})
VARIANTS["all"] = []


def run(variant, seed, args):
    name = f"abl-{variant}-s{seed}-e{args.epochs}"
    overrides = [
        f"data.source=folder:{args.folder}", "data.test_fraction=0.2", f"data.split_seed={args.split_seed}",
        f"seed={seed}", f"train.epochs={args.epochs}", f"train.log_dir={args.log_dir}", f"train.run_name={name}",
        "train.evaluate_after=false", "train.verbose=0", *VARIANTS[variant], *args.set,
    ]
    if args.limit_per_class:
        overrides.append(f"data.limit_per_class={args.limit_per_class}")
    command = [sys.executable, "-m", "kerasclf.cli", "train", "--config", "configs/cifar10/fast.yaml"]
    for o in overrides:
        command += ["--set", o]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - started
    metrics = json.loads((Path(args.log_dir) / name / "metrics.json").read_text())
    row = {
        "variant": variant, "seed": seed, "epochs": args.epochs, "train_size": metrics["train_size"],
        "test_size": metrics["test_size"], "best_val_accuracy": metrics["best_val_accuracy"],
        "test_accuracy": metrics["test_accuracy"], "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "train_seconds": metrics["wall_seconds"], "command_seconds": round(wall, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="/tmp/cifar/train")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--log-dir", default="/tmp/recipe-logs")
    parser.add_argument("--set", nargs="*", default=[], help="more KEY=VALUE overrides for every run")
    args = parser.parse_args()
    rows = [run(v, s, args) for v in args.variants for s in args.seeds]
    print("\n| variant | best validation accuracy | held-out test accuracy | train seconds | seeds |")
    print("|---|---|---|---|---|")
    for v in args.variants:
        mine = [r for r in rows if r["variant"] == v]
        sec = statistics.mean(r["train_seconds"] for r in mine)
        print(f"| {v} | {_mean_spread(mine, 'best_val_accuracy')} | {_mean_spread(mine, 'test_accuracy')} | {sec:.0f} | {len(mine)} |")


def _mean_spread(rows, key):
    values = [r[key] * 100 for r in rows]
    spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}%{spread}"


if __name__ == "__main__":
    main()
