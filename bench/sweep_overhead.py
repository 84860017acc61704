"""Overhead of `kerasclf sweep`: a sweep of N runs against the same N runs as separate commands.

Both sides start one `python -m kerasclf.cli train` process per run; the sweep adds its own
start, the plan, and the comparison at the end (table, curves, HParams). Runs are tiny
(synthetic data, 1 epoch) so that fixed costs show. The two sides alternate `--repeats`
times (the machine's load drifts). Prints one JSON line with the wall seconds and the ratio
sweep / separate.

    python bench/sweep_overhead.py [--runs 3] [--repeats 2]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]", "train.epochs=1",
        "train.evaluate_after=false", "train.verbose=0"]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def _timed(cmd, env):
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-800:]}")
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(root)}
    cli = [sys.executable, "-m", "kerasclf.cli"]
    seeds = list(range(1, args.runs + 1))
    separate, sweep = [], []
    work = Path(tempfile.mkdtemp(prefix="kerasclf-sweep-bench-"))
    try:
        for r in range(args.repeats):
            logs = work / f"separate{r}"
            separate.append(sum(
                _timed(cli + ["train", *_sets([*TINY, f"seed={s}", f"train.log_dir={logs}"])], env) for s in seeds
            ))
            grid = ["--grid", "seed=" + ",".join(map(str, seeds))]
            sweep.append(_timed(cli + ["sweep", *grid, *_sets([*TINY, f"train.log_dir={work}"]), "--name", f"sweep{r}"], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "sweep_overhead",
        "runs": args.runs,
        "separate_s": [round(t, 1) for t in separate],
        "sweep_s": [round(t, 1) for t in sweep],
        "ratio_median": round(statistics.median(sweep) / statistics.median(separate), 3),
        "extra_s_per_run_median": round((statistics.median(sweep) - statistics.median(separate)) / args.runs, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
