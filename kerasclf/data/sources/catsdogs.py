"""Dogs vs Cats: Microsoft's public PetImages pool (Cat / Dog folders, about 25,000 JPEGs).

Two layouts are read from <data cache>/cats-vs-dogs/: Microsoft's `PetImages/Cat/N.jpg` and
`PetImages/Dog/N.jpg` (what the download extracts), or Kaggle's flat `train/cat.N.jpg` and
`train/dog.N.jpg` (the competition's train.zip, extracted), labelled by the file-name prefix.

The pool holds empty files, files that are not JPEGs, and JPEGs that do not decode. They
are skipped, counted, and listed (path and reason) in `skipped.tsv` in the cache; the run
names that file (a warning, and `skipped_files` in the dry-run summary and metrics.json).
Not the tensorflow-datasets `cats_vs_dogs` builder: it drops such files without saying
which, and needs TensorFlow.

The archive (787 MB) is downloaded once and extracted once into the cache; every file is
checked once (decoded, pixels dropped) and the result kept in skipped.tsv, so later runs
read neither the archive nor a bad file. There is no test split: `data.test_fraction: 0.3`
carves the studies' 70:30 split (seeded, stratified). Images have many sizes: they are
decoded at `data.image_size` (default 128x128), in memory or streamed (`data.stream`).
"""

import csv
import os
import shutil
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kerasclf.backend import have_tensorflow
from kerasclf.data.cache import fetch, readable_download
from kerasclf.data.files import FileImages, _readable_index_tf
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

URL = "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
ARCHIVE = "kagglecatsanddogs_5340.zip"
SHA256 = "b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9"  # as tensorflow-datasets lists it
FOLDER = "cats-vs-dogs"
CLASSES = (("cat", "Cat"), ("dog", "Dog"))  # (class name, folder in PetImages/)
DEFAULT_SIZE = (128, 128)
JPEG_MAGIC = b"\xff\xd8\xff"


def _extract(archive, root):
    """PetImages/Cat and PetImages/Dog from the zip into root/PetImages (atomic: renamed when complete)."""
    part = root / ".PetImages.part"
    shutil.rmtree(part, ignore_errors=True)
    folders = {folder for _, folder in CLASSES}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = Path(info.filename).parts
            if info.is_dir() or len(parts) != 3 or parts[0] != "PetImages" or parts[1] not in folders:
                continue
            target = part / parts[1] / parts[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if not all((part / folder).is_dir() for folder in folders):
        raise ValueError("the archive has no PetImages/Cat and PetImages/Dog folders")
    os.replace(part, root / "PetImages")


def _problem(path):
    """Why a file cannot be used ("empty", "not a JPEG ...", "corrupt: ..."), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if not head:
            return "empty"
        if not head.startswith(JPEG_MAGIC):
            return f"not a JPEG (starts with {head[:8]!r})"
        with Image.open(path) as image:
            image.draft("RGB", DEFAULT_SIZE)  # decode at a reduced scale: faster, still reads every byte
            image.load()
    except Exception as exc:  # PIL raises many types for broken files
        return f"corrupt: {type(exc).__name__}: {exc}"
    return None


def _check(paths, image_size):
    """{path: reason} for every file that is empty, not a JPEG, or does not decode (PIL, then TensorFlow)."""
    with ThreadPoolExecutor(4) as pool:
        reasons = dict(zip(paths, pool.map(_problem, paths, chunksize=64)))
    bad = {p: r for p, r in reasons.items() if r}
    if have_tensorflow():  # the streamed path decodes with TensorFlow: what it rejects is corrupt too
        good = [p for p in paths if p not in bad]
        kept = set(_readable_index_tf(good, image_size))
        bad.update({p: "corrupt: TensorFlow cannot decode it" for i, p in enumerate(good) if i not in kept})
    return bad


def _kind(reason):
    return "empty" if reason == "empty" else "not_jpeg" if reason.startswith("not a JPEG") else "corrupt"


def _scan(images):
    paths, labels = [], []
    for label, (_, folder) in enumerate(CLASSES):
        files = sorted((images / folder).iterdir(), key=lambda p: (len(p.name), p.name))  # 0.jpg, 1.jpg, ..., 10.jpg
        paths += [str(p) for p in files if p.is_file()]
        labels += [label] * sum(1 for p in files if p.is_file())
    return paths, np.asarray(labels, np.int32)


def _kaggle_files(train):
    """{class name: files} of Kaggle's flat layout: train/cat.N.jpg, train/dog.N.jpg."""
    found = {name: [] for name, _ in CLASSES}
    if train.is_dir():
        for p in train.iterdir():
            prefix = p.name.split(".", 1)[0].lower()
            if prefix in found and p.is_file():
                found[prefix].append(p)
    return found


def _scan_kaggle(train):
    paths, labels = [], []
    for label, (name, _) in enumerate(CLASSES):
        files = sorted(_kaggle_files(train)[name], key=lambda p: (len(p.name), p.name))  # cat.0.jpg, ..., cat.10.jpg
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, np.int32)


def _find_images(root):
    """(scan function, folder) of the copy in root: PetImages/, else Kaggle's train/, else None."""
    if (root / "PetImages").is_dir():
        return _scan, root / "PetImages"
    kaggle = _kaggle_files(root / "train")
    if all(kaggle.values()):
        return _scan_kaggle, root / "train"
    return None


def _read_skipped(listing):
    with open(listing, newline="") as f:
        return {row["path"]: row["reason"] for row in csv.DictReader(f, delimiter="\t")}


def _write_skipped(listing, root, bad):
    tmp = listing.with_suffix(".part")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["path", "reason"])
        for path in sorted(bad, key=lambda p: (Path(p).parent.name, len(p), p)):
            writer.writerow([os.path.relpath(path, root), " ".join(bad[path].split())])
    os.replace(tmp, listing)


@register_dataset(
    "cats-vs-dogs",
    description="Dogs vs Cats (Microsoft PetImages, or Kaggle's train/cat.N.jpg), 2 classes, one pool: split with data.test_fraction "
    "(downloads 787 MB once; broken files skipped and listed)",
)
def load_cats_vs_dogs(cfg, cache_dir):
    root = Path(cache_dir) / FOLDER
    size = tuple(cfg.image_size or DEFAULT_SIZE)
    if _find_images(root) is None:
        archive = fetch(URL, cache_dir, ARCHIVE, sha256=SHA256, what=f"cats-vs-dogs ({ARCHIVE})")
        root.mkdir(parents=True, exist_ok=True)
        broken = (zipfile.BadZipFile, OSError, ValueError, EOFError)
        with readable_download(archive, URL, "Dogs vs Cats archive", broken):
            _extract(archive, root)
    scan, images = _find_images(root)
    paths, labels = scan(images)
    listing = root / "skipped.tsv"
    if listing.is_file():
        skipped = {str(root / p): reason for p, reason in _read_skipped(listing).items()}
    else:  # first use: check every file once
        skipped = _check(paths, size)
        _write_skipped(listing, root, skipped)
    keep = [i for i, p in enumerate(paths) if p not in skipped]
    if not keep:
        raise DataError(f"No usable image in {images}: every file is listed in {listing}. Delete {root} to extract it again.")
    kept_paths = [paths[i] for i in keep]
    split = Split(FileImages(kept_paths, size, verified=True), labels[keep], kept_paths)
    kinds = Counter(_kind(reason) for reason in skipped.values())
    if skipped:
        counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
        warnings.warn(
            f"Dogs vs Cats: skipped {len(skipped)} of {len(paths)} files ({counts}); listed in {listing}.",
            stacklevel=2,
        )
    notes = {"skipped_files": {"count": len(skipped), "list": str(listing), **dict(kinds)}}
    return RawDataset({"train": split}, [name for name, _ in CLASSES], notes)
