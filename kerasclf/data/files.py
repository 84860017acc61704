"""Image files not yet decoded, and the choice between decoding them or streaming them.

File sources (folders, Dogs vs Cats) return splits whose `x` is a `FileImages`: the file
paths and the size every image will have. `build_dataset` then either decodes them into
one uint8 array (`decode_split`: the in-memory path) or, under `data.stream`, keeps them
on disk (`readable_split` drops files that cannot be decoded) and training streams them
through tf.data (kerasclf.data.stream). Both paths drop the same files before any split
is carved, so the same seed gives the same train/val/test files on either path.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kerasclf import backend
from kerasclf.data.geometry import exif_orientations
from kerasclf.data.images import _try_decode, _warn_skipped, decode, decode_files
from kerasclf.data.splits import Split
from kerasclf.data.stream import decoded_bytes, read_image, should_stream
from kerasclf.errors import ConfigError, DataError


class FileImages:
    """An array-like (N, H, W, 3) uint8 view of image files, decoded on demand.

    `images[i]` decodes file i; `images[index_array]` or a slice is a smaller FileImages
    (nothing decoded); `np.asarray(images)` decodes them all. Used where code reads a few
    images of a split (galleries, statistics on a sample) without the whole split in RAM.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, paths, image_size, verified=False):
        self.paths = [str(p) for p in paths]
        self.image_size = tuple(int(s) for s in image_size)
        self.verified = verified  # every file is known to decode (the source checked them)

    @property
    def shape(self):
        return (len(self.paths), *self.image_size, 3)

    @property
    def nbytes(self):
        return int(np.prod(self.shape))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return decode(self.paths[index], self.image_size)
        if isinstance(index, slice):
            return FileImages(self.paths[index], self.image_size, self.verified)
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FileImages([self.paths[i] for i in index], self.image_size, self.verified)

    def __array__(self, dtype=None, copy=None):
        array, kept = decode_files(self.paths, self.image_size, quiet=True)
        if len(kept) != len(self.paths):
            raise DataError(f"{len(self.paths) - len(kept)} of {len(self.paths)} image files could not be decoded.")
        return array if dtype is None else array.astype(dtype)


def is_streamed(split):
    return split is not None and isinstance(split.x, FileImages)


def decode_split(split, where, cache=None):
    """The split with its files decoded into memory; unreadable files dropped (a warning names them).
    cache: the data cache folder, for the decoded-image cache (kerasclf.data.decoded)."""
    x, kept = decode_files(split.x.paths, split.x.image_size, cache=cache)
    if not kept:
        raise DataError(f"None of the {len(split)} image files under {where!r} could be read.")
    return Split(x, split.y[kept], [split.x.paths[i] for i in kept])


def readable_split(split, where):
    """The split still on disk, without the files that cannot be decoded (decoded once, not kept)."""
    if split.x.verified:
        return split
    kept = readable_index(split.x.paths, split.x.image_size)
    if not kept:
        raise DataError(f"None of the {len(split)} image files under {where!r} could be read.")
    paths = [split.x.paths[i] for i in kept]
    return Split(FileImages(paths, split.x.image_size, verified=True), split.y[kept], paths)


def readable_index(paths, image_size):
    """Indices of the files that decode, in order; the others are named in one warning.

    Every file is decoded once (as training will) and its pixels dropped at once, so memory
    stays flat: a file that only fails mid-epoch would stop a streamed run.
    """

    if backend.have_tensorflow():
        kept = _readable_index_tf(paths, image_size)
        retry = sorted(set(range(len(paths))) - set(kept))
    else:
        kept, retry = [], list(range(len(paths)))
    # Files TensorFlow rejects (or every file, without it) are tried with PIL, which says why.
    with ThreadPoolExecutor(4) as pool:
        errors = list(pool.map(lambda i: _try_decode(paths[i], image_size)[1], retry))
    kept += [i for i, error in zip(retry, errors) if error is None]
    _warn_skipped([error for error in errors if error])
    return sorted(kept)


def _readable_index_tf(paths, image_size):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    turns = np.asarray(exif_orientations(paths), np.int32)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths], turns))
    # reduce_max depends on every pixel, so the decode cannot be optimised away
    ds = ds.map(lambda i, p, o: (i, tf.reduce_max(read_image(p, image_size, orientation=o))),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors().batch(4096)
    return sorted(int(i) for index, _ in ds.as_numpy_iterator() for i in index)


def choose_stream(setting, num_images, image_size, memory_fraction):
    """Whether to stream: data.stream true/false, or "auto": when the decoded images would
    take more than `memory_fraction` of the memory available now (kerasclf.data.stream)."""
    if setting is True and not backend.have_tensorflow():
        raise ConfigError(
            "data.stream=true reads files through tf.data, and TensorFlow is not installed: "
            "install kerasclf[tf], or set data.stream=false (decode into memory)."
        )
    if setting != "auto":
        return setting
    large = should_stream(num_images, image_size, memory_fraction)
    if large and not backend.have_tensorflow():
        warnings.warn(
            f"{num_images} images at {image_size[0]}x{image_size[1]} take "
            f"{decoded_bytes(num_images, image_size) / 2**30:.1f} GiB decoded, more than "
            f"data.memory_fraction={memory_fraction} of the available memory, but streaming needs "
            "TensorFlow (kerasclf[tf]); decoding into memory anyway.",
            stacklevel=2,
        )
        return False
    return large
