"""Start-up latency of the `kerasclf` command: `kerasclf --help`, N fresh processes.

Prints one JSON line: best and median wall seconds (and every run). The command must stay
light: heavy modules (Keras, TensorFlow, JAX) are imported inside commands only.

    python bench/cli.py [--runs 7]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def command():
    """The console script next to this interpreter (the venv's), else PATH's, else -m."""
    local = Path(sys.executable).parent / "kerasclf"
    if local.exists():
        return [str(local)]
    found = shutil.which("kerasclf")
    return [found] if found else [sys.executable, "-m", "kerasclf"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    cmd = command() + ["--help"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    times = []
    for _ in range(max(args.runs, 1)):
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(json.dumps({"bench": "cli_help", "error": f"exit {done.returncode}", "stderr": done.stderr[-500:]}))
            return 1
    print(json.dumps({
        "bench": "cli_help",
        "command": " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)),
        "runs": len(times),
        "best_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "all_s": [round(t, 3) for t in times],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
