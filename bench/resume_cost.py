"""What a resumed run costs: `train --resume` after a SIGKILL vs the epochs it still had to do.

Trains once without interruption (N epochs), then again and SIGKILLs that run in the middle
of epoch K+1 (which must then run again), then times `kerasclf train --resume`. Epoch times
on a shared machine vary a lot, so the figure compares what does not depend on them: the
resumed command's time outside its epochs (imports, data, model, restoring the state, the
final test-accuracy pass; compilation falls inside the first epoch of either) against the
uninterrupted command's, and counts the epochs the resumed command ran. One JSON line per repeat.

    python bench/resume_cost.py [--epochs 6] [--kill-after 3] [--repeats 1] [--backend tensorflow]
                                [--set KEY=VALUE ...]
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


def seconds(table):
    return [float(r["epoch_seconds"]) for r in table]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kill-after", type=int, default=3)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(max(args.repeats, 1)):
        print(json.dumps(measure(args)), flush=True)


def measure(args):
    env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = Path(tempfile.mkdtemp(prefix="kerasclf-resume-bench-"))
    cli = [sys.executable, "-m", "kerasclf.cli", "train"]

    def train(name):
        sets = [*RUN, *args.overrides, f"train.epochs={args.epochs}", f"train.log_dir={logs}", f"train.run_name={name}"]
        return cli + [a for s in sets for a in ("--set", s)]

    start = time.perf_counter()
    subprocess.run(train("full"), env=env, check=True, capture_output=True)
    full_wall = time.perf_counter() - start
    full = seconds(rows(logs / "full" / "history.csv"))

    killed = subprocess.Popen(train("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(rows(logs / "killed" / "history.csv")) < args.kill_after:
        if killed.poll() is not None:
            sys.exit("the run ended before it could be killed")
        time.sleep(0.01)
    time.sleep(0.3 * min(full[1:]))  # into the next epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = len(rows(logs / "killed" / "history.csv"))

    start = time.perf_counter()
    subprocess.run(cli + ["--resume", str(logs / "killed")], env=env, check=True, capture_output=True)
    resumed_wall = time.perf_counter() - start
    resumed = seconds(rows(logs / "killed" / "history.csv"))[done_before:]
    return {
        "backend": args.backend,
        "epochs": args.epochs,
        "finished_before_kill": done_before,
        "epochs_run_by_resume": len(resumed),
        "uninterrupted_command_s": round(full_wall, 2),
        "uninterrupted_startup_s": round(full_wall - sum(full), 2),
        "resumed_command_s": round(resumed_wall, 2),
        "resumed_startup_s": round(resumed_wall - sum(resumed), 2),
        "resumed_epochs_s": [round(x, 2) for x in resumed],
        "state_file_mb": round((logs / "killed" / "resume" / "state.npz").stat().st_size / 2**20, 2),
    }


if __name__ == "__main__":
    main()
