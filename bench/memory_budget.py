"""Peak RSS of a training run's data stages against the memory budget's estimate (kerasclf.data.budget).

    python bench/memory_budget.py [FOLDER] [--size H,W] [--on-device true|false]

Default: the 500 Dogs vs Cats photos of ../shared, data.image_size unset (the median size,
capped at 512 px), train.data_on_device=true (on a CPU backend the "device" table is host
memory): decoding, carving val/test, the statistics and the resident table, in a fresh
process. Target: the peak RSS above the process's baseline (TensorFlow imported, the
decoder warmed) at most the estimate the run was checked against, and at least 60% of it
(an estimate that loose would refuse runs that fit). A target, not a test (memory figures
depend on what else runs), printed as one JSON line.
"""

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT.parent / "shared" / "data" / "catsdogs-small" / "catsdogs-small.tar.xz"

PROBE = r"""
import json, sys
import psutil
from kerasclf.console import import_tensorflow_quietly
import_tensorflow_quietly()
import keras
from kerasclf.config import load_config
from kerasclf.data import budget, build_dataset
from kerasclf.data.images import decode_files
from kerasclf.training.feeding import memory_intent
from kerasclf.training.resident import ResidentData
args = json.loads(sys.argv[1])
plans = []
checked = budget.check_memory
def record(plan, *rest):
    plans.append(plan)
    return checked(plan, *rest)
budget.check_memory = record
decode_files(args["warm"], (8, 8))
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = psutil.Process().memory_info().rss
cfg = load_config(None, [f"data.source=folder:{args['root']}", "data.stream=false", "data.decoded_cache=false",
                         "data.val_fraction=0.2", f"data.image_size={args['size']}",
                         f"train.data_on_device={args['on_device']}"])
data = build_dataset(cfg.data, 0, training=memory_intent(cfg))
if args["on_device"] == "true":
    model = keras.Sequential([keras.Input((*data.info.image_size, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    ResidentData(data, lambda s: s.y).wrap(model)
plan = plans[-1]
print("RESULT " + json.dumps({"growth": hwm() - base, "estimate": plan.peak, "decoded": plan.images,
                              "stages": {k: plan.total(k) for k in plan.stages}, "image_size": list(data.info.image_size)}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--size", default=None, help="data.image_size as H,W (default: unset)")
    parser.add_argument("--on-device", default="true", choices=["true", "false"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            folder = Path(args.folder)
        else:
            with tarfile.open(SMALL) as archive:
                archive.extractall(tmp, filter="data")
            folder = next(p.parent for p in Path(tmp).rglob("*.jpg")).parent
        warm = [str(p) for p in sorted(folder.rglob("*.jpg"))[:2]]
        size = f"[{args.size}]" if args.size else "null"
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps({"root": str(folder), "warm": warm, "size": size,
                                                      "on_device": args.on_device})],
            capture_output=True, text=True, cwd=ROOT, check=True)
        result = json.loads(done.stdout.split("RESULT ")[-1])
        mib = 2**20
        print(json.dumps({
            "bench": "memory_budget", "folder": str(folder), "image_size": result["image_size"],
            "data_on_device": args.on_device, "decoded_mib": round(result["decoded"] / mib),
            "peak_growth_mib": round(result["growth"] / mib), "estimate_mib": round(result["estimate"] / mib),
            "stages_mib": {k: round(v / mib) for k, v in result["stages"].items()},
            "ratio": round(result["growth"] / result["estimate"], 2), "target_ratio": [0.6, 1.0],
        }))


if __name__ == "__main__":
    main()
