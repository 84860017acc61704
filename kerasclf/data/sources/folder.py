"""The user's own images: `folder:/root` with root/<class>/*.jpg|png|bmp|gif.

Two layouts are read: class folders directly under root (one pool; validation and test are
carved from it by data.val_fraction / data.test_fraction), or root/train/<class>/ with
optional root/val|valid|validation/<class>/ and root/test/<class>/.

What is refused or said, rather than done silently:
- Unreadable files (corrupt, truncated, not an image) are skipped with a warning naming them.
- A class folder with no readable image is dropped, with a warning naming it (a model would
  otherwise have an output for a class it never saw); a folder with no readable image at
  all is refused.
- A val/test class folder that train/ lacks, or that differs from a train/ class only in
  letter case, is an error naming it (its images could not be scored).
- Every image is fitted to one size: `data.image_size`, or when null the rule in sizing.py
  (with a message), by the `data.resize` policy (geometry.py). Before decoding, the memory
  the decoded images need is compared with what is available.
- File and folder names that are not UTF-8 are read (bytes to TensorFlow, escapes in messages).
"""

import logging
import warnings
from pathlib import Path

import numpy as np

from kerasclf.console import Stage, display
from kerasclf.data.budget import check_data
from kerasclf.data.files import FileImages, choose_stream
from kerasclf.data.images import IMAGE_EXTENSIONS, decode_files
from kerasclf.data.registry import RawDataset
from kerasclf.data.sizing import derive_image_size
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

log = logging.getLogger("kerasclf")
_SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def _class_dirs(root):
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_images(class_dir):
    return sorted(
        str(p) for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _find_layout(root):
    """{"train": dir, "val": dir?, "test": dir?} for split layouts, else {"train": root}."""
    layout = {}
    for split, names in _SPLIT_DIRS.items():
        for name in names:
            if (root / name).is_dir():
                layout[split] = root / name
                break
    return layout if "train" in layout else {"train": root}


def _say_layout(root, layout):
    """Name the split folders found, and which splits are carved instead (a log message)."""
    if set(layout) == {"train"} and layout["train"] == root:
        return
    found = ", ".join(f"{display(d.name)}/ as the {split} split" for split, d in layout.items())
    carved = [
        f"{split} is carved from {display(layout['train'].name)}/ by data.{split}_fraction"
        for split in ("test", "val") if split not in layout
    ]
    used = [f"data.{split}_fraction does not apply" for split in ("val", "test") if split in layout]
    log.info(
        "Data folder %s: read %s%s%s.", display(root), found,
        f"; {', '.join(used)}" if used else "", f"; {'; '.join(carved)}" if carved else "",
    )


def _scan(split_dir, class_dirs):
    """(paths, labels) of the image files of `class_dirs` (folder names, label = position)."""
    paths, labels = [], []
    for c, name in enumerate(class_dirs):
        files = _list_images(split_dir / name) if (split_dir / name).is_dir() else []
        paths += files
        labels += [c] * len(files)
    return paths, np.asarray(labels, np.int32)


def _check_split_classes(layout, train_dirs):
    """A val/test class folder must be a train class, spelled the same way."""
    by_lower = {name.lower(): name for name in train_dirs}
    for split, split_dir in layout.items():
        if split == "train":
            continue
        for d in _class_dirs(split_dir):
            if d.name in train_dirs:
                continue
            if d.name.lower() in by_lower:
                raise DataError(
                    f"Class folder {display(d)!r} differs from the training class folder "
                    f"{display(layout['train'] / by_lower[d.name.lower()])!r} only in letter case; class "
                    f"names are case-sensitive. Rename one so that both are spelled the same."
                )
            if _list_images(d):
                raise DataError(
                    f"The {split} split has class folder {display(d.name)!r} ({display(d)}), which "
                    f"{display(layout['train'])!r} does not have, so a model trained there cannot predict "
                    f"it. Add training images for it, or move it out of {display(split_dir)!r}."
                )


def _drop_classes(splits, class_dirs, present, layout):
    """Keep the classes in `present` (sorted indices), renumbered; warn naming the others."""
    dropped = [class_dirs[c] for c in range(len(class_dirs)) if c not in present]
    if not dropped:
        return splits, [display(n) for n in class_dirs]
    for split, (_paths, labels) in splits.items():
        orphans = sorted({class_dirs[c] for c in set(labels.tolist()) if c not in present})
        if orphans and split != "train":
            raise DataError(
                f"The {split} split has images of class(es) {', '.join(display(n) for n in orphans)}, "
                f"but {display(layout['train'])!r} has no readable image of them, so a model cannot learn "
                "them. Add readable training images, or remove those folders from the split."
            )
    warnings.warn(
        f"Dropped {len(dropped)} class folder(s) with no readable image under {display(layout['train'])!r}: "
        f"{', '.join(display(n) for n in dropped)}. The model has {len(present)} classes; add images "
        "to those folders to keep them.",
        stacklevel=4,
    )
    remap = np.full(len(class_dirs), -1, np.int32)
    remap[present] = np.arange(len(present), dtype=np.int32)
    out = {split: (paths, remap[labels]) for split, (paths, labels) in splits.items()}
    return out, [display(class_dirs[c]) for c in present]


def load_folder(root, image_size=None, resize="crop", seed=0, stream=False, memory_fraction=0.25, batch_size=None,
                cache=None, memory=None):
    """RawDataset of the folder, decoded into memory; or, when `stream` says so (data.stream:
    true, or "auto" with the decoded images above `memory_fraction` of the available memory),
    FileImages splits left on disk for build_dataset to stream (kerasclf.data.files). `cache`:
    the data cache folder, where decoded images are kept for the next run (kerasclf.data.decoded).
    `memory`: the run's memory budget check (kerasclf.data.budget.check_data with the run's
    config bound), called before anything is decoded; None: the folder's own stages only."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"Data folder {display(root)!r} does not exist. Use folder:/path/to/root with root/<class>/*.jpg."
        )
    layout = _find_layout(root)
    _say_layout(root, layout)
    class_dirs = [d.name for d in _class_dirs(layout["train"])]
    if not class_dirs:
        raise DataError(
            f"Data folder {display(layout['train'])!r} has no class folders. Expected "
            f"{display(layout['train'])}/<class_name>/<image files> (JPEG, PNG, BMP or GIF)."
        )
    _check_split_classes(layout, set(class_dirs))
    with Stage(f"listing the image files of {display(root)}"):
        scanned = {split: _scan(d, class_dirs) for split, d in layout.items()}
    train_paths, train_labels = scanned["train"]
    if not train_paths:
        raise DataError(
            f"Data folder {display(layout['train'])!r} has class folders ({', '.join(display(n) for n in class_dirs[:5])}"
            f"{', ...' if len(class_dirs) > 5 else ''}) but no image files in them "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)})."
        )
    if image_size is None:
        image_size = derive_image_size(train_paths, display(layout["train"]), seed=seed)
    image_size = tuple(int(s) for s in image_size)
    total = sum(len(paths) for paths, _ in scanned.values())
    if memory is None:
        def memory(*args, **kwargs):
            return check_data(None, *args, batch_size=batch_size, **kwargs)
    where = f"Data folder {display(root)!r}"
    every_path = [p for paths, _ in scanned.values() for p in paths]
    if choose_stream(stream, total, image_size, memory_fraction):
        # streamed, the images never sit in memory together, but a few batches of them must
        memory(where, total, image_size, list(scanned), paths=every_path, streamed=True, seed=seed)
        return RawDataset(
            {split: Split(FileImages(paths, image_size), labels, paths) for split, (paths, labels) in scanned.items() if paths},
            [display(n) for n in class_dirs],
        )
    memory(where, total, image_size, list(scanned), paths=every_path, seed=seed)
    decoded = {}
    for split, (paths, labels) in scanned.items():
        if not paths:
            continue
        x, kept = decode_files(paths, image_size, resize, cache=cache)
        if not kept:
            raise DataError(
                f"None of the {len(paths)} image files under {display(layout[split])!r} could be read; "
                "they are corrupt or not images."
            )
        decoded[split] = (x, [paths[i] for i in kept], labels[kept])
    present = sorted(set(decoded["train"][2].tolist()))
    labelled, class_names = _drop_classes(
        {split: (p, y) for split, (_, p, y) in decoded.items()}, class_dirs, present, layout
    )
    splits = {split: Split(decoded[split][0], labelled[split][1], labelled[split][0]) for split in decoded}
    return RawDataset(splits, class_names)
