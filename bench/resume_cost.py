"""What a resumed run costs: `train --resume` after a SIGKILL vs the epochs it still had to do.

Trains once without interruption (N epochs), then again and SIGKILLs that run once K epochs
have finished (so the kill lands in epoch K+1, which must run again), then times
`kerasclf train --resume`. Start-up is the uninterrupted command's wall time minus its
epochs (imports, data, model, final evaluation). Prints one JSON line: the resumed
command's seconds, the epochs it had left, start-up (first-epoch compilation included) + that
many median epochs, and the ratio.

    python bench/resume_cost.py [--epochs 6] [--kill-after 3] [--backend tensorflow] [--set KEY=VALUE ...]
"""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["data.source=digits", "model.name=cnn", "train.verbose=0", "train.evaluate_after=false"]


def rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kill-after", type=int, default=3)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = Path(tempfile.mkdtemp(prefix="kerasclf-resume-bench-"))
    cli = [sys.executable, "-m", "kerasclf.cli", "train"]

    def train(name):
        sets = [*RUN, *args.overrides, f"train.epochs={args.epochs}", f"train.log_dir={logs}", f"train.run_name={name}"]
        return cli + [a for s in sets for a in ("--set", s)]

    start = time.perf_counter()
    subprocess.run(train("full"), env=env, check=True, capture_output=True)
    full_wall = time.perf_counter() - start
    epoch_seconds = [float(r["epoch_seconds"]) for r in rows(logs / "full" / "history.csv")]
    steady = sorted(epoch_seconds[1:])[len(epoch_seconds[1:]) // 2]  # median epoch after the first
    # start-up: everything but the epochs, plus the first epoch's compilation (a resumed run compiles too)
    startup = full_wall - sum(epoch_seconds) + (epoch_seconds[0] - steady)

    killed = subprocess.Popen(train("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(rows(logs / "killed" / "history.csv")) < args.kill_after:
        if killed.poll() is not None:
            sys.exit("the run ended before it could be killed")
        time.sleep(0.02)
    time.sleep(0.5 * epoch_seconds[args.kill_after])  # mid-epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = len(rows(logs / "killed" / "history.csv"))

    start = time.perf_counter()
    subprocess.run(cli + ["--resume", str(logs / "killed")], env=env, check=True, capture_output=True)
    resumed_wall = time.perf_counter() - start
    left = args.epochs - done_before
    expected = startup + left * steady
    print(json.dumps({
        "backend": args.backend,
        "epochs": args.epochs,
        "finished_before_kill": done_before,
        "epochs_left": left,
        "startup_s": round(startup, 2),
        "epoch_s_median": round(steady, 2),
        "resumed_command_s": round(resumed_wall, 2),
        "startup_plus_left_epochs_s": round(expected, 2),
        "ratio": round(resumed_wall / expected, 3),
        "state_file_mb": round((logs / "killed" / "resume" / "state.npz").stat().st_size / 2**20, 2),
        "uninterrupted_command_s": round(full_wall, 2),
    }))


if __name__ == "__main__":
    main()
