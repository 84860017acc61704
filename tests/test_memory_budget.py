"""Issue 17, part 5: peak memory of the stages that hold images, measured (peak RSS of a fresh
process) against the estimate kerasclf guards them with, on large generated photos."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

PROBE = r"""
import json, sys
import numpy as np, psutil
from kerasclf.console import import_tensorflow_quietly
import_tensorflow_quietly()
from kerasclf.config import load_config
from kerasclf.data import build_dataset
from kerasclf.data.files import FileImages
from kerasclf.data.provenance import digest
from kerasclf.data.splits import Split
from kerasclf.data.images import decode_files
args = json.loads(sys.argv[1])
import keras
from kerasclf.data import budget
from kerasclf.training.feeding import memory_intent
from kerasclf.training.resident import ResidentData
plans = []
checked = budget.check_memory
def record(plan, *rest):
    plans.append(plan)
    return checked(plan, *rest)
budget.check_memory = record  # the estimate the run itself is checked against
decode_files(args["warm"], (8, 8))  # tf.data's threads and kernels exist before the baseline
tiny = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
tiny(np.zeros((1, 8, 8, 3), np.uint8))  # Keras's layers and ops exist before the baseline
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: the peak (VmHWM) restarts from the current RSS, so it measures the stage alone
base = psutil.Process().memory_info().rss
out = {"baseline": base, "peak_before": base}
if args["what"] == "build":
    cfg = load_config(None, [f"data.source=folder:{args['root']}", "data.stream=false", "data.decoded_cache=false",
                             "data.val_fraction=0.2"])
    data = build_dataset(cfg.data, 0)
    out["decoded_bytes"] = int(sum(s.x.nbytes for s in (data.train, data.val) if s is not None))
    out["image_size"] = list(data.info.image_size)
elif args["what"] == "stages":  # decoding, splits, statistics and the device-resident table of a training run
    cfg = load_config(None, [f"data.source=folder:{args['root']}", "data.stream=false", "data.decoded_cache=false",
                             "data.val_fraction=0.2", "data.test_fraction=0.1", f"data.image_size={args['size']}",
                             "train.data_on_device=true"])
    data = build_dataset(cfg.data, 0, training=memory_intent(cfg))
    out["after_build"] = psutil.Process().memory_info().rss
    h, w = args["size"]
    model = keras.Sequential([keras.Input((h, w, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    wrapped = ResidentData(data, lambda s: s.y).wrap(model)
    out["decoded_bytes"] = int(sum(s.x.nbytes for s in (data.train, data.val, data.test)))
    out["estimate"] = plans[-1].peak
    out["stages"] = {name: plans[-1].total(name) for name in plans[-1].stages}
else:
    paths = args["paths"]
    split = Split(FileImages(paths, tuple(args["size"])), np.zeros(len(paths), np.int32), paths)
    out["digest"] = digest(split)
    out["decoded_bytes"] = split.x.nbytes
out["peak"] = hwm()
print("RESULT " + json.dumps(out))
"""


def photos(root, count, size, seed=0):
    """Camera-sized JPEGs: smooth gradients with noise (so they compress like photos, not like flat colour)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    paths = []
    for i in range(count):
        cls = "a" if i % 2 else "b"
        (root / cls).mkdir(parents=True, exist_ok=True)
        noise = rng.normal(0, 12, (-(-h // 8), -(-w // 8), 3)).astype(np.float32).repeat(8, 0).repeat(8, 1)[:h, :w]
        image = np.clip(ramp * (0.3 + 0.2 * (i % 3)) + noise + 40 * (i % 4), 0, 255).astype(np.uint8)
        path = root / cls / f"photo{i:03d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        paths.append(str(path))
    return paths


def probe(args):
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_decoding_large_photos_stays_within_the_estimate(tmp_path):
    """36 photos of 3000x2000 (6 Mpx each, 648 MB if decoded at full size), data.image_size unset:
    the size rule caps them at 512 px, JPEGs decode drafted, and the peak stays within the
    estimate that guards decoding (kerasclf.data.budget's decoding stage)."""
    from kerasclf.data.budget import decode_peak_bytes

    paths = photos(tmp_path / "photos", 36, (2000, 3000))
    warm = photos(tmp_path / "warm", 2, (40, 60), seed=1)
    result = probe({"what": "build", "root": str(tmp_path / "photos"), "warm": warm})
    assert result["image_size"] == [341, 512]
    estimate = decode_peak_bytes(36, (341, 512), largest=(2000, 3000))
    growth = result["peak"] - max(result["baseline"], result["peak_before"])
    print(f"peak RSS {result['peak'] / 2**20:.0f} MiB, growth {growth / 2**20:.0f} MiB, "
          f"estimate {estimate / 2**20:.0f} MiB, full-size decode would be {36 * 2000 * 3000 * 3 / 2**20:.0f} MiB")
    assert growth <= estimate, (growth, estimate)
    assert len(paths) == 36


@pytest.mark.slow
def test_hashing_a_streamed_split_holds_a_chunk_not_the_split(tmp_path):
    """splits.json's digest of a split still on disk (data.stream) decodes a chunk at a time."""
    from kerasclf.data.provenance import CHUNK_BYTES

    paths = photos(tmp_path / "photos", 240, (384, 512))
    warm = photos(tmp_path / "warm", 2, (40, 60), seed=1)
    result = probe({"what": "digest", "paths": paths, "size": [384, 512], "warm": warm})
    growth = result["peak"] - max(result["baseline"], result["peak_before"])
    whole = result["decoded_bytes"]  # 240 x 384 x 512 x 3 = 135 MiB
    print(f"digest: growth {growth / 2**20:.0f} MiB for a {whole / 2**20:.0f} MiB split (chunk {CHUNK_BYTES / 2**20:.0f} MiB)")
    assert growth < whole, (growth, whole)  # the whole split decoded (and copied to bytes) was over 2x that


@pytest.mark.slow
def test_every_stage_of_a_resident_run_stays_within_the_budget(tmp_path):
    """Decoding, carving val and test, the statistics and the device-resident table (train.data_on_device
    on a CPU backend, where the "device" copy is host memory too) of 240 photos of 1000x800 at 384x480:
    the peak RSS of the whole sequence stays within the estimate the run was checked against
    (kerasclf.data.budget.memory_plan), and the estimate is not loose (it is a peak, so the measured
    peak is at least 60% of it; here the resident table's three copies dominate)."""
    photos(tmp_path / "photos", 240, (800, 1000))
    warm = photos(tmp_path / "warm", 2, (40, 60), seed=1)
    result = probe({"what": "stages", "root": str(tmp_path / "photos"), "warm": warm, "size": [384, 480]})
    growth = result["peak"] - max(result["baseline"], result["peak_before"])
    estimate, mib = result["estimate"], 2**20
    print(f"peak RSS growth {growth / mib:.0f} MiB, estimate {estimate / mib:.0f} MiB "
          f"({', '.join(f'{k} {v / mib:.0f}' for k, v in result['stages'].items())}), "
          f"decoded images {result['decoded_bytes'] / mib:.0f} MiB")
    assert result["decoded_bytes"] == 240 * 384 * 480 * 3
    assert growth <= estimate, (growth, estimate)
    assert growth >= 0.6 * estimate, (growth, estimate)
