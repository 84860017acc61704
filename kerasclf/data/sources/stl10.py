"""STL-10, the labelled part: 5,000 train / 8,000 test colour images, 96x96, 10 classes.

Not the tensorflow-datasets `stl10` builder: it prepares the 100,000 unlabelled images too
and needs TensorFlow, while this works on every backend. The official archive (2.6 GB) is
downloaded once; its labelled binary files (370 MB) are extracted next to it on first use
and read from there afterwards (the archive may then be deleted).

Format (stl10_binary/*.bin): images are uint8 in column-major order, 3 x 96 x 96 each
(channel, column, row); labels are uint8 from 1 to 10.
"""

import os
import tarfile
from pathlib import Path

import numpy as np

from kerasclf.data.cache import fetch, readable_download
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
ARCHIVE = "stl10_binary.tar.gz"
SHA256 = "f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866"  # as tensorflow-datasets lists it
FOLDER = "stl10_binary"
LABELLED = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt")
SIDE = 96


def read_images(path):
    """(N, 96, 96, 3) uint8 from an STL-10 *_X.bin file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % (3 * SIDE * SIDE):
        raise ValueError(f"{raw.size} bytes is not a whole number of 3x96x96 images")
    return np.ascontiguousarray(raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1))


def read_labels(path):
    """0-based int32 labels from an STL-10 *_y.bin file (stored 1..10)."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int32) - 1
    if labels.size and not (labels.min() >= 0 and labels.max() <= 9):
        raise ValueError(f"labels outside 1..10 in {path}")
    return labels


def _extract_labelled(archive, folder):
    """Copy the labelled members out of the archive (one pass; atomic per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(LABELLED)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in wanted:
                tmp = folder / f".{name}.part"
                with tar.extractfile(member) as src, open(tmp, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                os.replace(tmp, folder / name)
                wanted.discard(name)
                if not wanted:
                    break  # the 2.4 GB of unlabelled images come after; no need to read them
    if wanted:
        raise ValueError(f"the archive lacks {', '.join(sorted(wanted))}")


@register_dataset("stl10", description="STL-10 labelled, 5k/8k 96x96, 10 classes (downloads 2.6 GB once)")
def load_stl10(cfg, cache_dir):
    folder = Path(cache_dir) / FOLDER
    if not all((folder / name).is_file() for name in LABELLED):
        archive = fetch(URL, cache_dir, ARCHIVE, sha256=SHA256, what=f"stl10 ({ARCHIVE})")
        with readable_download(archive, URL, "STL-10 archive", (tarfile.TarError, EOFError, OSError, ValueError)):
            _extract_labelled(archive, folder)
    try:
        names = [line.strip() for line in (folder / "class_names.txt").read_text().splitlines() if line.strip()]
        splits = {
            split: Split(read_images(folder / f"{split}_X.bin"), read_labels(folder / f"{split}_y.bin"))
            for split in ("train", "test")
        }
        for split, s in splits.items():
            if len(s.x) != len(s.y):
                raise ValueError(f"{split}: {len(s.x)} images but {len(s.y)} labels")
    except (OSError, ValueError) as exc:
        raise DataError(
            f"The STL-10 files in {folder} are not readable ({type(exc).__name__}: {exc}). Delete that folder "
            f"to extract them again from {ARCHIVE} (or download it again from {URL})."
        ) from None
    return RawDataset(splits, names)
