"""Image files named on the command line: folders walked recursively, any size or mode,
decoded in chunks to the size a model takes; unreadable files listed, not fatal."""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasclf.console import display
from kerasclf.data.images import IMAGE_EXTENSIONS, decode, decode_files
from kerasclf.errors import DataError


@dataclass
class Found:
    paths: list  # image files, in the order given (folders: sorted, recursively)
    unreadable: list = field(default_factory=list)  # "path (reason)" for files that could not be used


def find_images(inputs):
    """Image files under `inputs` (files or folders, folders recursively).

    A named file is kept whatever its extension (it is tried, and listed as unreadable if
    it is not an image); inside folders only IMAGE_EXTENSIONS are picked up."""
    found = Found([])
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found.paths += [str(Path(root, f)) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif path.is_file():
            found.paths.append(str(path))
        else:
            found.unreadable.append(f"{display(path)} (no such file or folder)")
    if not found.paths:
        missing = f" ({'; '.join(found.unreadable)})" if found.unreadable else ""
        raise DataError(
            f"No image files found in {', '.join(display(i) for i in inputs)}{missing}. Pass image files or "
            f"folders holding {', '.join(IMAGE_EXTENSIONS)} files (folders are searched recursively)."
        )
    return found


def decode_chunk(paths, size, policy="crop"):
    """(uint8 array (n, H, W, 3), indices of `paths` kept, ["path (reason)" of the others]).

    The decoder training used (tf.data where TensorFlow is installed, else PIL), so the
    pixels equal those `kerasclf evaluate` scores; grayscale, palette, RGBA and 16-bit files
    become RGB, any size is fitted to `size` by `policy` (kerasclf.data.geometry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reason of each failure is collected below instead
        array, kept = decode_files(list(paths), tuple(size), policy)
    failed = sorted(set(range(len(paths))) - set(kept))
    reasons = []
    for i in failed:
        try:
            decode(paths[i], tuple(size), policy)
            reasons.append(f"{display(paths[i])} (could not be decoded)")
        except Exception as exc:  # PIL raises many types for corrupt/non-image files
            reasons.append(f"{display(paths[i])} ({type(exc).__name__}: {exc})")
    return np.asarray(array, dtype=np.uint8), list(kept), reasons
