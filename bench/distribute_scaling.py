"""Images per second of one training epoch on 1 vs N devices at the same global batch.

    python bench/distribute_scaling.py [--backend tensorflow|jax] [--devices 2] [--epochs 3]

Each setting is a fresh `kerasclf train` process on the demo's digits (the demo CNN, 120
training images a class, so that every split divides over 2 devices) with train.cpu_devices=N;
the figure is the training split size over the steady epoch time (the median of the epochs
after the first, which includes compilation). On a CPU the N
logical devices share the same cores, so this measures the engine's overhead, not a speed-up:
GPU scaling needs a multi-GPU machine. Prints one JSON line per setting.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = {"tensorflow": "mirrored", "jax": "data-parallel"}


def run(backend, devices, epochs, log_dir):
    name = f"{backend}-{devices}"
    sets = [f"train.epochs={epochs}", "optim.warmup_epochs=0", "train.evaluate_after=false", "train.verbose=0",
            f"train.log_dir={log_dir}", f"train.run_name={name}", "train.data_on_device=false",
            "data.limit_per_class=120"]  # 1200 / 144 / 360 images: data-parallel needs splits that divide
    if devices > 1:
        sets += [f"train.distribute={ENGINE[backend]}", f"train.cpu_devices={devices}"]
    command = [sys.executable, "-m", "kerasclf.cli", "train", "--config", str(ROOT / "configs/digits/demo.yaml")]
    for s in sets:
        command += ["--set", s]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    subprocess.run(command, check=True, env=env, cwd=log_dir, stdout=subprocess.DEVNULL)
    run_dir = Path(log_dir) / name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv") as f:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    return {
        "backend": backend, "distribute": metrics["distribute"], "devices": metrics["devices"],
        "global_batch_size": metrics["global_batch_size"], "train_images": metrics["train_size"],
        "first_epoch_s": round(seconds[0], 2), "steady_epoch_s": round(steady, 2),
        "images_per_s": round(metrics["train_size"] / steady, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tensorflow", choices=sorted(ENGINE))
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir:
        for devices in (1, args.devices):
            print(json.dumps(run(args.backend, devices, args.epochs, log_dir)), flush=True)


if __name__ == "__main__":
    main()
