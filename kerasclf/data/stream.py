"""Streaming an image folder through tf.data, for data that does not fit in memory.

The default path (kerasclf.data.images via sources/folder.py) decodes every file once
(tf.data parallel decode, or PIL without TensorFlow) into one uint8 array and trains from
memory: no per-epoch I/O, the array can be carved into splits, its statistics computed, and it can live on the accelerator. It needs
N * H * W * 3 bytes of RAM (CIFAR-10: 150 MB; 100k images at 224x224: 15 GB).

`folder_dataset` is for folders whose decoded size is over that budget (`should_stream`
says so), or to start training before a large folder is decoded: files are read and
decoded by TensorFlow in parallel threads while the model trains. Choose `cache` by size:
  cache=True     decoded images kept in memory after epoch 1 (as fast as the in-memory
                 path from epoch 2; needs the memory the in-memory path needs, plus the
                 shuffle buffer's images, so only worth it for the early start);
  cache="<file>" decoded images written to a file cache in epoch 1 and read back after
                 (no decode cost, disk-bound; for data larger than RAM);
  cache=False    every epoch re-reads and decodes (the memory floor: one shuffle buffer of
                 file *names*, plus prefetched batches).
Order: with a cache the shuffle comes *after* it: shuffling file names before `cache()`
would freeze epoch 1's order for every later epoch (the cache replays it). Without one,
the file names are shuffled before decoding, which costs no memory.
"""

import numpy as np
import psutil

from kerasclf.data.geometry import exif_orientations, read_image_tf


def decoded_bytes(num_images, image_size, channels=3):
    """Bytes of uint8 images once decoded and resized."""
    height, width = image_size
    return int(num_images) * int(height) * int(width) * int(channels)


def should_stream(num_images, image_size, memory_fraction=0.25):
    """True when the decoded images would take more than `memory_fraction` of available RAM."""
    return decoded_bytes(num_images, image_size) > memory_fraction * psutil.virtual_memory().available


def read_image(path, image_size, policy="crop", orientation=1):
    """TensorFlow ops: one image file -> uint8 (H, W, 3) at image_size by the data.resize
    policy (graph-safe, for tf.data); the same geometry as the in-memory path (geometry.py),
    upright by the file's EXIF orientation (geometry.exif_orientation)."""
    return read_image_tf(path, image_size, policy, orientation)


def folder_dataset(
    paths,
    labels,
    image_size,
    batch_size,
    training,
    seed=0,
    cache=True,
    shuffle_buffer=None,
    num_classes=None,
):
    """A batched tf.data.Dataset of (uint8 images (B, H, W, 3), labels) read from `paths`.

    paths / labels: file paths and int class indices (e.g. from sources.folder's scan).
    image_size: (height, width) every image is resized to (antialiased bilinear, rounded to
      uint8; images already that size are passed through).
    training: shuffle, reshuffled each epoch (seeded by `seed`); the last batch may be partial.
    cache: True (memory), a file path, or False; see the module docstring.
    shuffle_buffer: elements in the shuffle buffer; None: all (exact shuffle).
    num_classes: when given, labels are one-hot float32 (label smoothing, MixUp).
    Decoding: JPEG exactly as PIL decodes it, other formats with tf.io.decode_image (a
    GIF's first frame). A file TensorFlow cannot decode raises an error when reached (the
    in-memory path skips it with a warning: check a doubtful folder with that first).
    """
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    paths = [str(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int32)
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels.")
    height, width = (int(s) for s in image_size)
    autotune = tf.data.AUTOTUNE
    buffer = int(shuffle_buffer or max(len(paths), 1))

    def load(path, label, orientation):
        image = read_image(path, (height, width), orientation=orientation)
        if num_classes is not None:
            label = tf.one_hot(label, num_classes, dtype=tf.float32)
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels, np.asarray(exif_orientations(paths), np.int32)))
    if training and not cache:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=autotune, deterministic=not training)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
        if training:
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    return ds.prefetch(autotune)
