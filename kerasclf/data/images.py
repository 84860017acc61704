"""Decoding image files into one uint8 array, skipping unreadable files with a warning.

A folder that fits in memory is decoded once and then trained from memory (no per-epoch
I/O). With TensorFlow the decode runs in tf.data's parallel C++ map (about 17,000 CIFAR
JPEGs/s on 2 cores, 4x PIL's rate); without it, PIL in a thread pool. Every image is
decoded straight to the target size with the `data.resize` policy (see geometry.py), so
memory holds N x H x W x 3 bytes plus a few images in flight, whatever the files' sizes.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from kerasclf.backend import have_tensorflow
from kerasclf.console import display
from kerasclf.data.geometry import fit_array, fit_pil, read_image_tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def decode(path, size=None, policy="crop"):
    """RGB uint8 array of one file, fitted to size=(height, width) by `policy` when given."""

    with Image.open(path) as image:
        if size is None:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
        return fit_pil(image, size, policy)


def _try_decode(path, size, policy="crop"):
    try:
        return decode(path, size, policy), None
    except Exception as exc:  # PIL raises many types for corrupt/non-image files
        return None, f"{display(path)} ({type(exc).__name__}: {exc})"


def image_size_of(path):
    """(height, width) from the file's header (nothing decoded)."""
    with Image.open(path) as image:
        return image.size[1], image.size[0]


def decode_files(paths, size, policy="crop", workers=4):
    """Decode `paths` to (array, kept_index). Unreadable files are skipped and named in a warning."""
    if not have_tensorflow():
        array, kept, bad = _decode_files_pil(paths, size, policy, workers)
        _warn_skipped(bad)
        return array, kept
    array, kept = _decode_files_tf(paths, size, policy)
    failed = sorted(set(range(len(paths))) - set(kept))
    # Files TensorFlow rejects get a second chance with PIL, which also says why it fails.
    rescued, rescued_kept, bad = _decode_files_pil([paths[i] for i in failed], size, policy, workers)
    _warn_skipped(bad)
    if rescued_kept:
        kept = kept + [failed[j] for j in rescued_kept]
        array = np.concatenate([array, rescued])
        order = np.argsort(kept, kind="stable")
        array, kept = array[order], [kept[i] for i in order]
    return array, kept


def _decode_files_tf(paths, size, policy):
    """tf.data parallel decode; a file that fails is dropped (ignore_errors) and its index goes missing."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    # File names as bytes: a name that is not UTF-8 (a str with surrogates) cannot be a tf.string.
    names = [os.fsencode(p) for p in paths]
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), names))
    ds = ds.map(lambda i, p: (i, read_image_tf(p, size, policy)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(1024)
    index, images = [], []
    for i, x in ds.as_numpy_iterator():
        index.append(i)
        images.append(x)
    if not images:
        return np.zeros((0, *size, 3), np.uint8), []
    return np.concatenate(images), np.concatenate(index).tolist()


def _decode_files_pil(paths, size, policy, workers):
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: _try_decode(p, size, policy), paths, chunksize=256))
    kept = [i for i, (arr, _) in enumerate(results) if arr is not None]
    bad = [err for _, err in results if err is not None]
    if not kept:
        return np.zeros((0, *size, 3), np.uint8), kept, bad
    return np.stack([results[i][0] for i in kept]), kept, bad


def _warn_skipped(bad):
    if bad:
        shown = "\n  ".join(bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"Skipped {len(bad)} unreadable image file(s):\n  {shown}{more}", stacklevel=3)


def resize_array(x, size, policy="crop"):
    """Fit a uint8 (N, H, W, C) array to `size` by `policy` (PIL bilinear); no-op when already that size."""
    if x.shape[1:3] == tuple(size):
        return x
    out = np.empty((len(x), *size, x.shape[-1]), np.uint8)
    for i, img in enumerate(x):
        out[i] = fit_array(img, size, policy)
    return out
