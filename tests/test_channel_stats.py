"""Per-channel statistics in bounded memory (issue 19).

The statistics once converted the whole sample (up to 10,000 decoded images) to float64 twice:
on Google's cats_and_dogs_filtered with data.image_size unset (374x459 photos) that was 17 GB
and the kernel killed the run. They are now exact integer sums over a chunk at a time.
"""

import tracemalloc

import numpy as np
import pytest
from conftest import write_image

from kerasclf.data import splits
from kerasclf.data.files import FileImages
from kerasclf.data.profile import channel_stats as exact_stats

pytestmark = pytest.mark.backend_agnostic


def _images(n=60, size=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *size, 3)).astype(np.uint8)
    x[..., 1] //= 2  # channels with different statistics
    return x


def test_statistics_equal_numpy_over_every_pixel():
    x = _images()
    mean, std = splits.channel_stats(x, max_images=len(x))
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-9)
    report = exact_stats(x)
    np.testing.assert_allclose(report["mean"], flat.mean(0), atol=1e-3)
    np.testing.assert_allclose(report["std"], flat.std(0), atol=1e-3)


def test_sampled_statistics_are_those_of_the_seeded_sample():
    x = _images(n=50)
    chosen = np.sort(np.random.default_rng(3).choice(50, 20, replace=False))
    mean, std = splits.channel_stats(x, max_images=20, seed=3)
    flat = x[chosen].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-9)


def test_working_memory_is_a_chunk_not_a_float_copy_of_the_sample(monkeypatch):
    """200 images of 64x64x3 are 2.4 MB; a float64 copy of them is 19.7 MB. With 64 KB chunks
    the statistics may allocate a few chunks, never a copy of the sample."""
    monkeypatch.setattr(splits, "STATS_CHUNK_BYTES", 64 * 1024, raising=False)
    x = _images(n=200, size=(64, 64))
    tracemalloc.start()
    try:
        splits.channel_stats(x, max_images=150, seed=0)  # a sample: fancy indexing must not copy it whole
        exact_stats(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_files_are_decoded_a_chunk_at_a_time(tmp_path, monkeypatch):
    """FileImages: at most one chunk's images decoded at once, and the figures those of the decoded pixels."""
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], _images(n=1, size=(20, 20), seed=i)[0])
    images = FileImages(paths, (20, 20))
    decoded_at_once = []
    real_array = FileImages.__array__

    def counting(self, dtype=None, copy=None):
        decoded_at_once.append(len(self))
        return real_array(self, dtype, copy)

    monkeypatch.setattr(FileImages, "__array__", counting)
    monkeypatch.setattr(splits, "STATS_CHUNK_BYTES", 5 * 20 * 20 * 3, raising=False)  # 5 images a chunk
    mean, std = splits.channel_stats(images, max_images=100)
    assert max(decoded_at_once) == 5 and sum(decoded_at_once) == 12
    flat = np.asarray(real_array(images)).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-9)
