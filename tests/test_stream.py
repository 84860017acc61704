"""Streaming an image folder through tf.data (kerasclf.data.stream): batches, labels, pixels
identical to the in-memory (PIL) path, reshuffling with a cache, and the size thresholds.

TensorFlow only (tf.data); not backend_agnostic.
"""

from collections import namedtuple

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from kerasclf.data import stream  # noqa: E402
from kerasclf.data.images import decode  # noqa: E402
from kerasclf.data.stream import decoded_bytes, folder_dataset, should_stream  # noqa: E402

SIZE = (16, 20)  # not a multiple of JPEG's 8/16-pixel blocks on purpose


def scan(root):
    """(paths, labels) as sources.folder lists them: sorted class folders, sorted files."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths = [p for c in classes for p in sorted((root / c).iterdir())]
    return paths, [classes.index(p.parent.name) for p in paths]


@pytest.fixture
def folder(tmp_path, make_image_folder):
    """3 classes x 4 files, JPEG and PNG alternating, all SIZE."""
    root = make_image_folder(tmp_path / "imgs", {"a": 4, "b": 4, "c": 4}, size=SIZE, ext=[".jpg", ".png"])
    return scan(root)


def epoch(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def file_index(images, reference):
    """For each image, the index of the one reference image it equals exactly."""
    out = []
    for image in images:
        hits = np.flatnonzero((reference == image).all(axis=(1, 2, 3)))
        assert len(hits) == 1, f"image matches {len(hits)} files"
        out.append(int(hits[0]))
    return out


def test_batches_are_uint8_of_the_requested_shape(folder):
    paths, labels = folder
    batches = list(folder_dataset(paths, labels, SIZE, batch_size=5, training=False, cache=False))
    assert [tuple(x.shape) for x, _ in batches] == [(5, 16, 20, 3), (5, 16, 20, 3), (2, 16, 20, 3)]
    assert all(x.dtype == tf.uint8 and y.dtype == tf.int32 for x, y in batches)


def test_pixels_and_labels_match_the_files_in_order(folder):
    """Same-size JPEG and PNG: exactly the pixels PIL decodes (the in-memory path)."""
    paths, labels = folder
    images, got = epoch(folder_dataset(paths, labels, SIZE, batch_size=5, training=False, cache=False))
    assert got.tolist() == labels
    for path, image in zip(paths, images):
        np.testing.assert_array_equal(image, decode(path), err_msg=str(path))
    assert {p.suffix for p in paths} == {".jpg", ".png"}


def test_other_sizes_are_resized_like_pil(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "big", {"a": 3}, sizes=[(37, 53), (20, 20), (64, 48)])
    paths, labels = scan(root)
    images, _ = epoch(folder_dataset(paths, labels, SIZE, batch_size=8, training=False, cache=False))
    assert images.shape == (3, *SIZE, 3)
    for path, image in zip(paths, images):
        diff = np.abs(image.astype(int) - decode(path, SIZE).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.5, (path, diff.max(), diff.mean())


def test_one_hot_labels_when_num_classes_is_given(folder):
    paths, labels = folder
    _, got = epoch(folder_dataset(paths, labels, SIZE, batch_size=5, training=False, cache=False, num_classes=3))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.eye(3, dtype=np.float32)[labels])


@pytest.mark.parametrize("cache", [True, False, "file"])
def test_training_epochs_reshuffle_and_keep_labels_with_their_images(folder, tmp_path, cache):
    paths, labels = folder
    reference = np.stack([decode(p) for p in paths])
    cache = str(tmp_path / "decoded.cache") if cache == "file" else cache
    ds = folder_dataset(paths, labels, SIZE, batch_size=5, training=True, seed=3, cache=cache)
    orders = []
    for _ in range(3):
        images, got = epoch(ds)
        order = file_index(images, reference)
        assert sorted(order) == list(range(len(paths)))  # every file once per epoch
        assert got.tolist() == [labels[i] for i in order]  # each label stays with its image
        orders.append(order)
    assert orders[0] != list(range(len(paths)))  # shuffled at all
    # A shuffle before cache() would replay epoch 1's order for ever.
    assert orders[0] != orders[1] and orders[1] != orders[2]


def test_mismatched_paths_and_labels_are_refused(folder):
    paths, labels = folder
    with pytest.raises(ValueError, match="12 paths but 11 labels"):
        folder_dataset(paths, labels[:-1], SIZE, batch_size=5, training=False)


def test_decoded_bytes_counts_uint8_pixels():
    assert decoded_bytes(10, (32, 48)) == 10 * 32 * 48 * 3
    assert decoded_bytes(10, [32, 48], channels=1) == 10 * 32 * 48
    assert decoded_bytes(0, (224, 224)) == 0
    # 100k images at 224x224: the 15 GB of the module docstring.
    assert decoded_bytes(100_000, (224, 224)) == 15_052_800_000


def test_should_stream_above_the_fraction_of_available_memory(monkeypatch):
    import psutil

    available = 4 * 32 * 32 * 3 * 100  # the default fraction 0.25 of it: exactly 100 images of 32x32
    memory = namedtuple("svmem", "available total")(available, 2 * available)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    assert stream.should_stream(100, (32, 32)) is False  # exactly at the limit: still in memory
    assert stream.should_stream(101, (32, 32)) is True
    assert should_stream(0, (32, 32)) is False
    assert should_stream(200, (32, 32), memory_fraction=0.5) is False
    assert should_stream(201, (32, 32), memory_fraction=0.5) is True
