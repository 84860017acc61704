"""Peak memory while loading a folder of large photos at a small image_size (issue #8).

Generates N photo-like JPEGs of 4000x3000 (two classes; 8 distinct images, copied, since only
their size matters here), then loads the folder in a fresh process with kerasclf's in-memory
path (data.image_size [224, 224], data.resize crop) and reports that process's peak resident
memory (VmHWM, Linux), its memory after importing TensorFlow (the floor any TensorFlow run
pays), and the decoded array's size. Goal: peak under 1.5 GB.

    python bench/folder_memory.py [--images 200] [--photo 4000x3000] [--size 224] [--decoder tf|pil]
Prints one JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_BYTES = 1.5e9


def make_photos(root, count, width, height, distinct=8, seed=0):
    """`count` JPEGs (quality 90) in root/a and root/b: smooth colour fields with texture."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(distinct):
        small = rng.integers(0, 256, (height // 100, width // 100, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
        noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
        pixels = np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8)
        path = root / f"_blob{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        blobs.append(path.read_bytes())
        path.unlink()
    for n in range(count):
        folder = root / ("a" if n % 2 == 0 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"photo{n:04d}.jpg").write_bytes(blobs[n % distinct])
    return sum(len(b) for b in blobs) / distinct


MEASURE = r"""
import json, sys, time
size, decoder, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def rss():
    # VmHWM: this process's peak resident memory. (ru_maxrss would carry over the parent's
    # peak through fork + exec: the photo generator's.)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
if decoder == "tf":
    import tensorflow as tf  # noqa: F401  (the floor: what importing TensorFlow costs)
else:
    import kerasclf.data.pipeline as pipeline
    pipeline.have_tensorflow = lambda: False
from kerasclf.data.sources.folder import load_folder
after_import = rss()
start = time.perf_counter()
raw = load_folder(root, (size, size), "crop")
seconds = time.perf_counter() - start
x = raw.splits["train"].x
print(json.dumps({"peak_rss_bytes": rss(), "rss_after_import_bytes": after_import,
                  "load_seconds": round(seconds, 2), "decoded_bytes": int(x.nbytes), "shape": list(x.shape)}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--photo", default="4000x3000", help="width x height of the generated photos")
    parser.add_argument("--size", type=int, default=224, help="data.image_size side")
    parser.add_argument("--decoder", choices=["tf", "pil"], default="tf")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.photo.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="kerasclf-photos-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        file_bytes = make_photos(root, args.images, width, height)
        generated = time.perf_counter() - started
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(args.size), args.decoder, str(root)],
            capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1],
        )
        if done.returncode:
            sys.stderr.write(done.stderr)
            return done.returncode
        result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(
        bench="folder_memory", images=args.images, photo=f"{width}x{height}", image_size=[args.size, args.size],
        decoder=args.decoder, jpeg_mb=round(file_bytes / 2**20, 2),
        full_size_decoded_bytes=args.images * width * height * 3, generate_seconds=round(generated, 1),
        peak_rss_gb=round(result["peak_rss_bytes"] / 1e9, 3), under_goal=result["peak_rss_bytes"] < GOAL_BYTES,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
