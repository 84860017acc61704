"""Tiny-ImageNet (cs231n): 200 ImageNet classes at 64x64, 500 train and 50 val images each.

The official zip (tiny-imagenet-200.zip, ~237 MB) is downloaded once into the data cache
and extracted beside it (tiny-imagenet-200/); an extracted copy, or the zip alone, is read
without the network. Its layout:
    wnids.txt                          the 200 class ids (WordNet), one a line
    words.txt                          <wnid>\\t<synonyms, comma-separated> for all of WordNet
    train/<wnid>/images/*.JPEG
    val/images/*.JPEG + val/val_annotations.txt   <file>\\t<wnid>\\t<bounding box>
    test/images/*.JPEG                 unlabelled: not used
Class order is wnids.txt order, so `data.classes: first:50` is "the first 50 classes";
class names are each wnid's first synonym in words.txt (with the wnid appended where two
classes would share a name). The labelled val images become the `test` split (the official
test split has no labels); validation is carved from train by data.val_fraction. Only the
chosen classes' files are decoded.
"""

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from kerasclf.data.cache import fetch
from kerasclf.data.images import decode_files
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split, select_classes
from kerasclf.errors import DataError

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ZIP_NAME = "tiny-imagenet-200.zip"
ZIP_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
IMAGE_SIZE = (64, 64)


def dataset_root(cache_dir):
    """The extracted tiny-imagenet-200/ folder in the cache (downloading/extracting it if needed)."""
    cache_dir = Path(cache_dir)
    root = cache_dir / FOLDER
    if (root / "wnids.txt").is_file():
        return root
    archive = fetch(URL, cache_dir, ZIP_NAME, md5=ZIP_MD5, what=f"Tiny-ImageNet ({ZIP_NAME})")
    _extract(archive, cache_dir)
    if not (root / "wnids.txt").is_file():
        raise DataError(
            f"{archive} holds no {FOLDER}/wnids.txt, so it is not the Tiny-ImageNet zip. Delete it to "
            f"download it again from {URL}, or put the official zip (or its extracted {FOLDER}/ folder) "
            f"in {cache_dir}."
        )
    return root


def _extract(archive, cache_dir):
    """Unzip into a temporary folder, then move tiny-imagenet-200/ into place (no half-extracted copy)."""
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix=".tiny-imagenet-")
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        if (Path(tmp) / FOLDER).is_dir():
            os.replace(Path(tmp) / FOLDER, Path(cache_dir) / FOLDER)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(
            f"{archive} is not a readable zip ({type(exc).__name__}: {exc}). It may be truncated: "
            f"delete it to download it again from {URL}."
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_lines(path):
    if not path.is_file():
        raise DataError(f"{path} is missing: {path.parent} is not a complete Tiny-ImageNet copy. "
                        f"Delete it to extract or download it again.")
    return [line for line in path.read_text().splitlines() if line.strip()]


def class_names_for(wnids, words_path):
    """Each wnid's first synonym from words.txt; a name shared by two classes gets ' (wnid)'."""
    words = {}
    for line in _read_lines(words_path):
        wnid, _, synonyms = line.partition("\t")
        words[wnid.strip()] = synonyms.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    counts = {n: names.count(n) for n in names}
    return [f"{n} ({w})" if counts[n] > 1 else n for n, w in zip(names, wnids)]


def read_tiny_imagenet(root, classes=None, image_size=None):
    """RawDataset of the extracted folder at `root`, decoding only `classes` (data.classes)."""
    root = Path(root)
    wnids = [line.strip() for line in _read_lines(root / "wnids.txt")]
    names = class_names_for(wnids, root / "words.txt")
    keep = list(range(len(wnids)))
    if classes is not None:
        _, kept_names = select_classes({}, names, classes)  # raises the usual ConfigError for a bad choice
        keep = sorted(names.index(n) for n in kept_names)  # wnids order; select_classes reorders later
    label_of = {wnids[i]: label for label, i in enumerate(keep)}
    train_paths, train_labels = [], []
    for wnid, label in label_of.items():
        files = sorted((root / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise DataError(f"{root / 'train' / wnid / 'images'} has no .JPEG files: the Tiny-ImageNet copy "
                            f"in {root} is incomplete. Delete it to extract or download it again.")
        train_paths += [str(f) for f in files]
        train_labels += [label] * len(files)
    test_paths, test_labels = [], []
    for line in _read_lines(root / "val" / "val_annotations.txt"):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{root / 'val' / 'val_annotations.txt'}: line {line!r} is not "
                            "'<file>\\t<wnid>\\t<box>'.")
        if fields[1] in label_of:
            test_paths.append(str(root / "val" / "images" / fields[0]))
            test_labels.append(label_of[fields[1]])
    size = tuple(image_size) if image_size else IMAGE_SIZE
    splits = {}
    for split, paths, labels in (("train", train_paths, train_labels), ("test", test_paths, test_labels)):
        if not paths:
            continue
        x, kept = decode_files(paths, size)
        splits[split] = Split(x, np.asarray(labels, np.int32)[kept], [paths[i] for i in kept])
    return RawDataset(splits, [names[i] for i in keep])


@register_dataset(
    "tiny-imagenet",
    description="Tiny-ImageNet, 200 classes 64x64, 500 train + 50 val (used as test) each (downloads ~237 MB once)",
)
def tiny_imagenet(cfg, cache_dir):
    return read_tiny_imagenet(dataset_root(cache_dir), cfg.classes, cfg.image_size)
