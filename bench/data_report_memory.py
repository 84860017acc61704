"""Peak RSS of `kerasclf data-report` on real photos of many sizes with data.image_size unset.

    python bench/data_report_memory.py [FOLDER]   # default: the 500 Dogs vs Cats photos of ../shared

The statistics once made two float64 copies of the decoded sample (5.2 GB peak on these 500
photos, 17 GB on cats_and_dogs_filtered); now they run a chunk at a time. Measured alone here:
1.03 GiB. A target, not a test (memory figures depend on what else runs), printed as one JSON line.
"""

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT.parent / "shared" / "data" / "catsdogs-small" / "catsdogs-small.tar.xz"


def peak_rss(folder, out):
    code = (
        "import resource\nfrom kerasclf.cli import main\n"
        f"try:\n    main(['data-report', '--data', 'folder:{folder}', '--out', '{out}'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(done.stdout.split("PEAK")[-1].split()[0])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        if len(sys.argv) > 1:
            folder = Path(sys.argv[1])
        else:
            with tarfile.open(SMALL) as archive:
                archive.extractall(tmp, filter="data")
            folder = next(p.parent for p in Path(tmp).rglob("*.jpg")).parent
        peak = peak_rss(folder, Path(tmp) / "report")
        print(json.dumps({"bench": "data_report_memory", "folder": str(folder), "peak_rss_gib": round(peak / 2**30, 2),
                          "target_gib": 2.5}))


if __name__ == "__main__":
    main()
