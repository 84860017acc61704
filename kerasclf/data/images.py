"""Decoding image files into one uint8 array, skipping unreadable files with a warning.

A folder that fits in memory is decoded once and then trained from memory (no per-epoch
I/O). With TensorFlow the decode runs in tf.data's parallel C++ map (about 17,000 CIFAR
JPEGs/s on 2 cores, 4x PIL's rate); without it, PIL in a thread pool. Every image is
decoded straight to the target size with the `data.resize` policy (see geometry.py), so
memory holds N x H x W x 3 bytes plus a few images in flight, whatever the files' sizes.
"""

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from kerasclf.backend import have_tensorflow
from kerasclf.console import Stage, display, native_lines_captured
from kerasclf.data import decoded
from kerasclf.data.geometry import exif_orientations, fit_array, fit_pil, orientation_of, read_image_tf

log = logging.getLogger("kerasclf")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
BATCH_BYTES = 32 * 2**20  # decoded images tf.data assembles at once (a batch, copied into the array)


def decode(path, size=None, policy="crop"):
    """RGB uint8 array of one file, fitted to size=(height, width) by `policy` when given."""
    with Image.open(path) as image:
        if size is None:
            w, h = image.size
            return fit_pil(image, (w, h) if orientation_of(image) >= 5 else (h, w), "stretch")
        return fit_pil(image, size, policy)


def _try_decode(path, size, policy="crop"):
    try:
        return decode(path, size, policy), None
    except Exception as exc:  # PIL raises many types for corrupt/non-image files
        return None, f"{display(path)} ({type(exc).__name__}: {exc})"


def image_size_of(path):
    """(height, width) from the file's header (nothing decoded)."""
    with Image.open(path) as image:
        turned = orientation_of(image) >= 5  # stored sideways: upright it is the other way round
        return (image.size[0], image.size[1]) if turned else (image.size[1], image.size[0])


def decode_files(paths, size, policy="crop", workers=4, cache=None, quiet=False):
    """Decode `paths` to (array, kept_index). Unreadable files are skipped and named in a warning.

    cache: the data cache folder (kerasclf.data.cache.cache_dir): the decoded images are kept
    there (kerasclf.data.decoded) and a later call on unchanged files loads them instead.
    quiet: no progress line (callers that decode a chunk at a time say what they do themselves)."""
    size = tuple(int(s) for s in size)
    decoder = "tf" if have_tensorflow() else "pil"
    entry = stamp = None
    if cache is not None and paths:
        entry = decoded.entry_path(cache, paths, size, policy, decoder)
        with Stage(f"checking the decoded-image cache for {len(paths):,} files"):
            stamp = decoded.fingerprint(paths)
            hit = decoded.load(entry, stamp)
        if hit is not None:
            log.info("loaded %s decoded images from the cache %s", f"{len(hit[1]):,}", display(entry))
            _warn_skipped(hit[2])
            return hit[0], hit[1]
    with Stage(f"decoding {len(paths):,} image files to {size[0]}x{size[1]}", total=len(paths), quiet=quiet) as stage:
        array, kept, bad = _decode(paths, size, policy, workers, decoder, stage)
    _warn_skipped(bad)
    if entry is not None:
        decoded.store(entry, stamp, array, kept, bad)
    return array, kept


def _decode(paths, size, policy, workers, decoder, stage):
    if decoder == "pil":
        return _decode_files_pil(paths, size, policy, workers)
    with native_lines_captured() as libjpeg:  # libjpeg's raw lines become one warning below
        out, kept = _decode_files_tf(paths, size, policy, stage)
    failed = sorted(set(range(len(paths))) - set(kept))
    if libjpeg and not failed:  # with failures, the skipped files are named with PIL's reason instead
        shown = "; ".join(dict.fromkeys(libjpeg[:5]))
        warnings.warn(f"libjpeg reported {len(libjpeg)} problem(s) in JPEG files that still decoded ({shown}); "
                      "their pixels may be partly grey. `kerasclf data-report` shows the images.", stacklevel=4)
    # Files TensorFlow rejects get a second chance with PIL, which also says why it fails; the
    # images it rescues go into their own rows, so the array is never copied to make room.
    rescued, rescued_kept, bad = _decode_files_pil([paths[i] for i in failed], size, policy, workers)
    for j, k in enumerate(rescued_kept):
        out[failed[k]] = rescued[j]
    kept = sorted(kept + [failed[k] for k in rescued_kept])
    return _compact(out, kept), kept, bad


def _compact(out, kept):
    """The rows `kept` (sorted) moved to the front of `out` in place (row k takes row kept[k] >= k):
    skipped files cost no copy of the array. A view: their rows stay allocated at the end."""
    for k, i in enumerate(kept):
        if k != i:
            out[k] = out[i]
    return out[:len(kept)]


def _decode_files_tf(paths, size, policy, stage=None):
    """tf.data parallel decode into one array with a row per path; a file that fails is dropped
    (ignore_errors): its row is left unset and its index is missing from the kept list."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    out = np.empty((len(paths), *size, 3), np.uint8)
    if not paths:
        return out, []
    # File names as bytes: a name that is not UTF-8 (a str with surrogates) cannot be a tf.string.
    names = [os.fsencode(p) for p in paths]
    turns = np.asarray(exif_orientations(paths), np.int32)  # phone photos: upright, as PIL shows them
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), names, turns))
    ds = ds.map(lambda i, p, o: (i, read_image_tf(p, size, policy, o)), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    ds = ds.ignore_errors().batch(max(1, min(1024, BATCH_BYTES // (size[0] * size[1] * 3))))
    # Each batch is copied into the array allocated up front: keeping the batches and
    # concatenating them held the images about three times, and the allocator kept most of
    # that memory for the rest of the process (measured: 3.8x the decoded size, 2.8x kept).
    kept = []
    for i, x in ds.as_numpy_iterator():
        out[i] = x
        kept.extend(i.tolist())
        if stage is not None:
            stage.update(len(kept))
    return out, kept


def _decode_files_pil(paths, size, policy, workers):
    out = np.empty((len(paths), *size, 3), np.uint8)  # filled as images arrive, not stacked from a list of them
    kept, bad = [], []
    with ThreadPoolExecutor(workers) as pool:
        for i, (array, error) in enumerate(pool.map(lambda p: _try_decode(p, size, policy), paths)):
            if array is None:
                bad.append(error)
                continue
            out[len(kept)] = array
            kept.append(i)
    return out[:len(kept)], kept, bad


def _warn_skipped(bad):
    if bad:
        shown = "\n  ".join(bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"Skipped {len(bad)} unreadable image file(s):\n  {shown}{more}", stacklevel=3)


def resize_array(x, size, policy="crop", rows=None):
    """Fit a uint8 (N, H, W, C) array to `size` by `policy` (PIL bilinear); no-op when already that size.
    rows: only these images of `x`, in this order (no copy of them at the old size is made)."""
    if rows is None and x.shape[1:3] == tuple(size):
        return x
    rows = range(len(x)) if rows is None else rows
    out = np.empty((len(rows), *size, x.shape[-1]), np.uint8)
    for k, i in enumerate(rows):
        out[k] = fit_array(x[i], size, policy)
    return out
