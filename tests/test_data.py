"""Data sources (CIFAR archives, folders, digits, synthetic), caching, splits and subsets."""

import io
import pickle
import tarfile
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import class_image, write_image
from PIL import Image

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
from kerasclf.data.cache import cache_dir
from kerasclf.errors import ConfigError, DataError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def data(source, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=source, **kwargs)


# --- CIFAR archives in the official format -----------------------------------------------


def _add_pickle(tar, name, obj):
    payload = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _images(n, seed):
    """n random HWC uint8 images and their official rows: 1024 red, 1024 green, 1024 blue values."""
    hwc = np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    rows = hwc.transpose(0, 3, 1, 2).reshape(n, 3072)  # CHW, row-major, as the archive stores it
    return hwc, rows


def write_cifar10(directory, per_batch=6, test=8):
    """cifar-10-python.tar.gz laid out as the official one; returns (train_hwc, train_y, test_hwc, test_y)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as tar:
        _add_pickle(tar, "cifar-10-batches-py/batches.meta", {
            b"num_cases_per_batch": per_batch,
            b"label_names": [n.encode() for n in CIFAR10_NAMES],
            b"num_vis": 3072,
        })
        for i in range(1, 6):
            hwc, rows = _images(per_batch, seed=i)
            labels = [(i + j) % 10 for j in range(per_batch)]
            _add_pickle(tar, f"cifar-10-batches-py/data_batch_{i}", {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": labels,
                b"data": rows,
                b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)],
            })
            train_x.append(hwc)
            train_y += labels
        hwc, rows = _images(test, seed=99)
        test_y = [j % 10 for j in range(test)]
        _add_pickle(tar, "cifar-10-batches-py/test_batch", {
            b"batch_label": b"testing batch 1 of 1", b"labels": test_y, b"data": rows,
            b"filenames": [f"test_{j}.png".encode() for j in range(test)],
        })
        info = tarfile.TarInfo("cifar-10-batches-py/readme.html")  # the official archive has one
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return np.concatenate(train_x), np.array(train_y), hwc, np.array(test_y)


def write_cifar100(directory, train=12, test=5):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fine_names = [f"fine{c:02d}" for c in range(100)]
    train_hwc, train_rows = _images(train, seed=1)
    test_hwc, test_rows = _images(test, seed=2)
    train_y = [(7 * j) % 100 for j in range(train)]
    test_y = [(13 * j) % 100 for j in range(test)]
    with tarfile.open(directory / "cifar-100-python.tar.gz", "w:gz") as tar:
        _add_pickle(tar, "cifar-100-python/meta", {
            b"fine_label_names": [n.encode() for n in fine_names],
            b"coarse_label_names": [f"coarse{c:02d}".encode() for c in range(20)],
        })
        for name, rows, fine in (("train", train_rows, train_y), ("test", test_rows, test_y)):
            _add_pickle(tar, f"cifar-100-python/{name}", {
                b"filenames": [f"{name}{j}.png".encode() for j in range(len(fine))],
                b"batch_label": f"{name}ing batch 1 of 1".encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": rows,
            })
    return fine_names, train_hwc, np.array(train_y), test_hwc, np.array(test_y)


def test_cifar10_archive_read_in_hwc_with_names(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar10(tmp_path / "cache")
    ds = build_dataset(data("cifar10", data_dir=str(tmp_path / "cache")))
    assert ds.info.class_names == CIFAR10_NAMES
    assert ds.train.x.shape == (30, 32, 32, 3) and ds.train.x.dtype == np.uint8
    np.testing.assert_array_equal(ds.train.x, train_x)  # every pixel, every channel, in order
    np.testing.assert_array_equal(ds.train.y, train_y)
    np.testing.assert_array_equal(ds.test.x, test_x)
    np.testing.assert_array_equal(ds.test.y, test_y)
    assert ds.val is None


def test_cifar10_pixel_layout_is_channels_last():
    # One image whose red plane is all 255, green 0, blue a gradient: after loading,
    # x[..., 0] is red, and blue varies along the width.
    from kerasclf.data.sources.cifar import _to_split

    red = np.full(1024, 255, np.uint8)
    green = np.zeros(1024, np.uint8)
    blue = np.tile(np.arange(32, dtype=np.uint8), 32)
    split = _to_split([{b"data": np.concatenate([red, green, blue])[None], b"labels": [3]}], b"labels")
    img = split.x[0]
    assert img.shape == (32, 32, 3)
    assert (img[..., 0] == 255).all() and (img[..., 1] == 0).all()
    np.testing.assert_array_equal(img[5, :, 2], np.arange(32))


def test_cifar10_class_subset_and_validation(tmp_path):
    write_cifar10(tmp_path, per_batch=20)
    ds = build_dataset(data("cifar10", data_dir=str(tmp_path), classes="first:3", val_fraction=0.2))
    assert ds.info.class_names == ["airplane", "automobile", "bird"]
    for split in (ds.train, ds.val, ds.test):
        assert set(np.unique(split.y)) <= {0, 1, 2}
    assert len(ds.train) + len(ds.val) == sum(1 for i in range(1, 6) for j in range(20) if (i + j) % 10 < 3)


def test_cifar100_archive_read_with_fine_labels(tmp_path):
    fine_names, train_x, train_y, test_x, test_y = write_cifar100(tmp_path)
    ds = build_dataset(data("cifar100", data_dir=str(tmp_path)))
    assert ds.info.class_names == fine_names and ds.info.num_classes == 100
    np.testing.assert_array_equal(ds.train.x, train_x)
    np.testing.assert_array_equal(ds.train.y, train_y)
    np.testing.assert_array_equal(ds.test.x, test_x)
    np.testing.assert_array_equal(ds.test.y, test_y)


@pytest.mark.parametrize(
    "name, filename",
    [("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")],
)
def test_missing_archive_without_network_names_file_url_and_folder(tmp_path, name, filename):
    folder = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        build_dataset(data(name, data_dir=str(folder)))
    message = str(info.value)
    assert filename in message
    assert f"https://www.cs.toronto.edu/~kriz/{filename}" in message
    assert str(folder / filename) in message
    assert list(folder.iterdir()) == []  # no partial or temporary file left


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    class Broken(io.RawIOBase):
        """A response that delivers some bytes, then drops the connection."""

        sent = False

        def readable(self):
            return True

        def readinto(self, buffer):
            if self.sent:
                raise ConnectionResetError("connection reset by peer")
            self.sent = True
            buffer[:4] = b"\x1f\x8b\x08\x00"
            return 4

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Broken())
    folder = tmp_path / "cache"
    with pytest.raises(DataError, match="ConnectionResetError"):
        build_dataset(data("cifar10", data_dir=str(folder)))
    assert list(folder.iterdir()) == []


def test_corrupt_download_is_refused_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"not the archive"))
    folder = tmp_path / "cache"
    with pytest.raises(DataError, match="md5"):
        build_dataset(data("cifar10", data_dir=str(folder)))
    assert list(folder.iterdir()) == []


def test_kerasclf_data_moves_the_cache(tmp_path, monkeypatch):
    env_cache = tmp_path / "env-cache"
    monkeypatch.setenv("KERASCLF_DATA", str(env_cache))
    assert cache_dir() == env_cache
    assert cache_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"  # data.data_dir wins
    with pytest.raises(DataError) as info:
        build_dataset(data("cifar10"))
    assert str(env_cache / "cifar-10-python.tar.gz") in str(info.value)
    train_x, *_ = write_cifar10(env_cache)
    ds = build_dataset(data("cifar10"))
    np.testing.assert_array_equal(ds.train.x, train_x)


def test_default_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("KERASCLF_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "kerasclf"


def test_unknown_data_set_suggests_closest():
    with pytest.raises(DataError, match='Unknown data set \'cifar11\'. Did you mean "cifar10"'):
        build_dataset(data("cifar11"))


# --- folder source -------------------------------------------------------------------------


def test_folder_class_names_labels_and_resize(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "imgs", {"b": 4, "a": 3, "c": 5}, sizes=[(12, 12), (20, 9), (7, 30)])
    ds = build_dataset(data(f"folder:{root}", image_size=[16, 16]))
    assert ds.info.class_names == ["a", "b", "c"]  # sorted folder names
    assert ds.train.x.shape == (12, 16, 16, 3) and ds.train.x.dtype == np.uint8
    assert ds.info.image_size == (16, 16)
    assert Counter(ds.train.y.tolist()) == {0: 3, 1: 4, 2: 5}
    for image, label, path in zip(ds.train.x, ds.train.y, ds.train.paths):
        assert Path(path).parent.name == ds.info.class_names[label]
        # the pixels are the class's: its colour's strongest channel is the image's strongest
        assert int(np.argmax(image.reshape(-1, 3).mean(0))) == "abc".index(Path(path).parent.name)


def test_folder_without_image_size_uses_the_median_size_and_says_so(tmp_path, make_image_folder, caplog):
    # Issue #8: the first file in sorted order no longer decides. a000 (sorted first) is a
    # large photo; the other five images are 10x14.
    root = make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3}, sizes=[(10, 14)])
    write_image(root / "a" / "a000.png", class_image("a", (300, 400)))
    with caplog.at_level("INFO", logger="kerasclf"):
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.train.x.shape == (6, 10, 14, 3)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "data.image_size is not set: using [10, 14]" in message and "median size of 6 images" in message


@pytest.mark.parametrize("ext", [".png", ".bmp", ".gif", ".jpg", ".jpeg", ".JPG"])
def test_folder_decodes_every_format(tmp_path, make_image_folder, ext):
    root = make_image_folder(tmp_path / "imgs", {"a": 2, "b": 2}, ext=ext)
    ds = build_dataset(data(f"folder:{root}"))
    assert len(ds.train) == 4
    assert all(p.endswith(ext) for p in ds.train.paths)
    for image, label in zip(ds.train.x, ds.train.y):
        assert int(np.argmax(image.reshape(-1, 3).mean(0))) == label  # a is red, b is green


def test_folder_grayscale_and_rgba_become_rgb(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir(parents=True)
    Image.new("L", (8, 8), 200).save(tmp_path / "imgs" / "a" / "gray.png")
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(tmp_path / "imgs" / "b" / "rgba.png")
    Image.new("P", (8, 8)).save(tmp_path / "imgs" / "b" / "palette.gif")
    ds = build_dataset(data(f"folder:{tmp_path / 'imgs'}"))
    assert ds.train.x.shape == (3, 8, 8, 3)
    assert (ds.train.x[0] == 200).all()


def test_folder_split_layout(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"cat": 10, "dog": 10})
    make_image_folder(tmp_path / "root" / "test", {"cat": 3, "dog": 2})
    ds = build_dataset(data(f"folder:{tmp_path / 'root'}", val_fraction=0.2))
    assert ds.info.class_names == ["cat", "dog"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (16, 4, 5)
    assert all("/test/" in p for p in ds.test.paths)
    assert all("/train/" in p for p in ds.train.paths + ds.val.paths)
    assert Counter(ds.test.y.tolist()) == {0: 3, 1: 2}


def test_folder_split_layout_with_val_folder(tmp_path, make_image_folder, caplog):
    make_image_folder(tmp_path / "root" / "train", {"a": 4, "b": 4})
    make_image_folder(tmp_path / "root" / "val", {"a": 1, "b": 2})
    with caplog.at_level("INFO", logger="kerasclf"):
        ds = build_dataset(data(f"folder:{tmp_path / 'root'}", val_fraction=0.5))
    assert (len(ds.train), len(ds.val), ds.test) == (8, 3, None)  # the val folder is used as is
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "read train/ as the train split, val/ as the val split; data.val_fraction does not apply" in message
    assert "test is carved from train/ by data.test_fraction" in message


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no class folders") as info:
        build_dataset(data(f"folder:{tmp_path / 'empty'}"))
    assert str(tmp_path / "empty") in str(info.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(data(f"folder:{tmp_path / 'nowhere'}"))


def test_class_folders_without_images_is_a_clear_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "root" / name).mkdir(parents=True)
    (tmp_path / "root" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no image files") as info:
        build_dataset(data(f"folder:{tmp_path / 'root'}"))
    assert "a, b" in str(info.value)


def test_corrupt_image_is_skipped_with_a_warning_naming_it(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 3, "b": 3})
    bad = root / "b" / "b999.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    truncated = root / "a" / "a998.png"
    truncated.write_bytes((root / "a" / "a000.png").read_bytes()[:40])
    with pytest.warns(UserWarning, match="Skipped 2 unreadable") as record:
        ds = build_dataset(data(f"folder:{root}"))
    text = " ".join(str(w.message) for w in record)
    assert str(bad) in text and str(truncated) in text
    assert len(ds.train) == 6
    assert str(bad) not in ds.train.paths
    assert Counter(ds.train.y.tolist()) == {0: 3, 1: 3}  # labels stay aligned with kept files


def test_folder_of_only_corrupt_images_is_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "root" / name).mkdir(parents=True)
        (tmp_path / "root" / name / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        build_dataset(data(f"folder:{tmp_path / 'root'}"))
    with pytest.warns(UserWarning), pytest.raises(DataError, match="could be read"):
        build_dataset(data(f"folder:{tmp_path / 'root'}", image_size=[8, 8]))


def test_corrupt_first_image_does_not_stop_the_size_probe(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2}, size=(9, 11))
    (root / "a" / "a000.png").write_bytes(b"garbage")  # sorted first: the file that sets the size
    with pytest.warns(UserWarning, match="a000.png"):
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.train.x.shape == (3, 9, 11, 3)


# --- splits and subsets ------------------------------------------------------------------


@pytest.fixture
def unbalanced(tmp_path, make_image_folder):
    return make_image_folder(tmp_path / "root", {"a": 20, "b": 40, "c": 60}, size=(6, 6))


def test_validation_split_is_stratified(unbalanced):
    ds = build_dataset(data(f"folder:{unbalanced}", val_fraction=0.25), seed=0)
    assert Counter(ds.val.y.tolist()) == {0: 5, 1: 10, 2: 15}
    assert Counter(ds.train.y.tolist()) == {0: 15, 1: 30, 2: 45}
    assert not set(ds.val.paths) & set(ds.train.paths)


def test_validation_split_is_seeded(unbalanced):
    cfg = data(f"folder:{unbalanced}", val_fraction=0.25)
    first = build_dataset(cfg, seed=3).val.paths
    assert build_dataset(cfg, seed=3).val.paths == first
    assert build_dataset(cfg, seed=4).val.paths != first


def test_test_fraction_carves_a_stratified_test_split(unbalanced):
    ds = build_dataset(data(f"folder:{unbalanced}", val_fraction=0.1, test_fraction=0.5), seed=0)
    assert Counter(ds.test.y.tolist()) == {0: 10, 1: 20, 2: 30}
    assert len(ds.train) + len(ds.val) + len(ds.test) == 120


@pytest.mark.parametrize("key", ["val_fraction", "test_fraction"])
def test_fraction_out_of_range_is_refused(unbalanced, key):
    from kerasclf.config import load_config

    with pytest.raises(ConfigError, match=f"data.{key} must be in"):
        load_config(None, [f"data.source=folder:{unbalanced}", f"data.{key}=1.5"])


def test_classes_first_n(unbalanced):
    ds = build_dataset(data(f"folder:{unbalanced}", classes="first:2"))
    assert ds.info.class_names == ["a", "b"]
    assert Counter(ds.train.y.tolist()) == {0: 20, 1: 40}


def test_classes_by_name_renumbers_in_the_given_order(unbalanced):
    ds = build_dataset(data(f"folder:{unbalanced}", classes=["c", "a"]))
    assert ds.info.class_names == ["c", "a"]
    assert Counter(ds.train.y.tolist()) == {0: 60, 1: 20}
    for label, path in zip(ds.train.y, ds.train.paths):
        assert Path(path).parent.name == ds.info.class_names[label]


@pytest.mark.parametrize(
    "classes, fragment",
    [(["a", "dd"], "'dd'"), ("first:9", "first:9"), ("first:x", "first:x"), ("first:0", "first:0")],
)
def test_bad_class_subset_is_a_config_error(unbalanced, classes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_dataset(data(f"folder:{unbalanced}", classes=classes))


def test_limit_per_class(unbalanced):
    ds = build_dataset(data(f"folder:{unbalanced}", limit_per_class=7, val_fraction=0.25), seed=0)
    assert Counter(ds.train.y.tolist()) == {0: 7, 1: 7, 2: 7}
    assert len(ds.val) == 30  # the validation split is carved first and not limited
    again = build_dataset(data(f"folder:{unbalanced}", limit_per_class=7, val_fraction=0.25), seed=0)
    assert again.train.paths == ds.train.paths


# --- built-in sources ------------------------------------------------------------------------


def test_digits_is_32x32_rgb_uint8_with_10_classes():
    ds = build_dataset(data("digits"))
    assert ds.info.class_names == [str(d) for d in range(10)]
    assert ds.train.x.shape[1:] == (32, 32, 3) and ds.train.x.dtype == np.uint8
    assert (len(ds.train), len(ds.test)) == (1437, 360)
    assert set(np.unique(ds.test.y)) == set(range(10))
    assert ds.train.x.max() > 200 and ds.train.x.min() == 0
    # grey digits: the three channels are equal
    assert (ds.train.x[..., 0] == ds.train.x[..., 2]).all()


def test_synthetic_is_small_and_balanced():
    ds = build_dataset(data("synthetic", val_fraction=0.1))
    assert ds.info.num_classes == 4
    assert (len(ds.train), len(ds.val), len(ds.test)) == (360, 40, 100)
    assert Counter(ds.val.y.tolist()) == {c: 10 for c in range(4)}


def test_image_size_resizes_builtin_sources():
    ds = build_dataset(data("synthetic", image_size=[20, 24]))
    assert ds.train.x.shape[1:] == (20, 24, 3) and ds.test.x.shape[1:] == (20, 24, 3)
    assert ds.info.image_size == (20, 24)


def test_tiny_folder_is_split_stratified_with_a_warning_and_too_tiny_is_a_clear_error(tmp_path, make_image_folder):
    # 4 images, 2 classes, val_fraction 0.25: one validation image cannot hold both classes,
    # so one image per class is carved (said in a warning), never an unstratified split.
    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2})
    with pytest.warns(UserWarning, match="fewer than the 2 classes: carving 2"):
        ds = build_dataset(data(f"folder:{root}", val_fraction=0.25), seed=0)
    assert sorted(ds.train.y.tolist()) == [0, 1] and sorted(ds.val.y.tolist()) == [0, 1]
    ones = make_image_folder(tmp_path / "ones", {"a": 1, "b": 1})
    with pytest.warns(UserWarning, match="single image"), pytest.raises(DataError, match="data.val_fraction=0.5 cannot"):
        build_dataset(data(f"folder:{ones}", val_fraction=0.5))


@pytest.mark.parametrize("content", [b"", b"definitely not gzip", "truncated"])
def test_unreadable_cached_archive_is_a_clear_error(tmp_path, content):
    if content == "truncated":
        write_cifar10(tmp_path / "good")
        content = (tmp_path / "good" / "cifar-10-python.tar.gz").read_bytes()[:300]
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(content)
    with pytest.raises(DataError, match="not a readable cifar10 archive") as info:
        build_dataset(data("cifar10", data_dir=str(tmp_path)))
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(info.value)
