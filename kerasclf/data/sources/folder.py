"""The user's own images: `folder:/root` with root/<class>/*.jpg|png|bmp|gif.

Two layouts are read: class folders directly under root (one pool; validation and test are
carved from it by data.val_fraction / data.test_fraction), or root/train/<class>/ with
optional root/val|valid|validation/<class>/ and root/test/<class>/.
Unreadable files (corrupt, truncated, not an image) are skipped with a warning naming them;
a folder with no readable image is refused.
"""

from pathlib import Path

import numpy as np

from kerasclf.data.files import FileImages
from kerasclf.data.images import IMAGE_EXTENSIONS, decode_files, image_size_of
from kerasclf.data.registry import RawDataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

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


def _scan(split_dir, class_names):
    paths, labels = [], []
    for c, name in enumerate(class_names):
        files = _list_images(split_dir / name) if (split_dir / name).is_dir() else []
        paths += files
        labels += [c] * len(files)
    return paths, np.asarray(labels, np.int32)


def _first_readable_size(paths, split_dir):
    for path in paths:
        try:
            return image_size_of(path)
        except Exception:  # corrupt or not an image: decode_files skips it with a warning later
            continue
    raise DataError(
        f"None of the {len(paths)} image files under {str(split_dir)!r} could be read "
        f"(for example {paths[0]!r}); they are corrupt or not images."
    )


def load_folder(root, image_size=None, decode=True):
    """RawDataset of the folder; decode=False leaves the files on disk (FileImages splits,
    decoded or streamed later by build_dataset)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"Data folder {str(root)!r} does not exist. Use folder:/path/to/root with root/<class>/*.jpg.")
    layout = _find_layout(root)
    class_names = [d.name for d in _class_dirs(layout["train"])]
    if not class_names:
        raise DataError(
            f"Data folder {str(layout['train'])!r} has no class folders. Expected "
            f"{layout['train']}/<class_name>/<image files> (JPEG, PNG, BMP or GIF)."
        )
    scanned = {split: _scan(d, class_names) for split, d in layout.items()}
    if not len(scanned["train"][0]):
        raise DataError(
            f"Data folder {str(layout['train'])!r} has class folders ({', '.join(class_names[:5])}"
            f"{', ...' if len(class_names) > 5 else ''}) but no image files in them "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)})."
        )
    if image_size is None:  # the first readable image sets the size
        image_size = _first_readable_size(scanned["train"][0], layout["train"])
    splits = {}
    for split, (paths, labels) in scanned.items():
        if not paths:
            continue
        if not decode:
            splits[split] = Split(FileImages(paths, image_size), labels, paths)
            continue
        x, kept = decode_files(paths, tuple(image_size))
        if not kept:
            raise DataError(f"None of the {len(paths)} image files under {str(layout[split])!r} could be read.")
        splits[split] = Split(x, labels[kept], [paths[i] for i in kept])
    return RawDataset(splits, class_names)
