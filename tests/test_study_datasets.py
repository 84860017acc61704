"""STL-10, SVHN and Dogs vs Cats, read offline from small files in their real formats that
the tests write: STL-10's column-major binary files in the official tar.gz, SVHN's MATLAB
files (scipy.io.savemat), and a PetImages zip with the kinds of broken files the public one has.
"""

import io
import json
import tarfile
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset, load_builtin_datasets
from kerasclf.data.files import FileImages
from kerasclf.errors import DataError

STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def data(source, cache, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=source, data_dir=str(cache), **kwargs)


def asymmetric_images(n, side, seed):
    """Random images: any mix-up of rows, columns or channels changes them."""
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


# --- STL-10 ------------------------------------------------------------------------------


def _tar_add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_stl10(cache, n_train=20, n_test=12):
    """stl10_binary.tar.gz as published: column-major (channel, column, row) bytes, labels 1..10."""
    train_x, test_x = asymmetric_images(n_train, 96, 1), asymmetric_images(n_test, 96, 2)
    train_y, test_y = np.arange(n_train) % 10, (np.arange(n_test) * 3) % 10
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(cache / "stl10_binary.tar.gz", "w:gz") as tar:
        _tar_add(tar, "stl10_binary/class_names.txt", ("\n".join(STL10_NAMES) + "\n").encode())
        _tar_add(tar, "stl10_binary/fold_indices.txt", b"0 1 2\n")
        for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            _tar_add(tar, f"stl10_binary/{name}_X.bin", x.transpose(0, 3, 2, 1).tobytes())
            _tar_add(tar, f"stl10_binary/{name}_y.bin", (y + 1).astype(np.uint8).tobytes())
        _tar_add(tar, "stl10_binary/unlabeled_X.bin", asymmetric_images(3, 96, 3).transpose(0, 3, 2, 1).tobytes())
    return train_x, train_y, test_x, test_y


@pytest.mark.backend_agnostic
def test_stl10_images_labels_and_class_names(tmp_path):
    train_x, train_y, test_x, test_y = write_stl10(tmp_path)
    ds = build_dataset(data("stl10", tmp_path))
    assert ds.info.class_names == STL10_NAMES
    assert ds.info.image_size == (96, 96)
    assert (len(ds.train), len(ds.test)) == (20, 12)
    np.testing.assert_array_equal(ds.train.x, train_x)  # rows, columns and channels in place
    np.testing.assert_array_equal(ds.test.x, test_x)
    np.testing.assert_array_equal(ds.train.y, train_y)  # 1..10 in the file, 0..9 here
    np.testing.assert_array_equal(ds.test.y, test_y)


def test_stl10_extracts_once_and_then_needs_no_archive(tmp_path):
    train_x, *_ = write_stl10(tmp_path)
    build_dataset(data("stl10", tmp_path))
    assert (tmp_path / "stl10_binary" / "train_X.bin").is_file()
    assert not (tmp_path / "stl10_binary" / "unlabeled_X.bin").exists()  # only the labelled part
    (tmp_path / "stl10_binary.tar.gz").unlink()
    np.testing.assert_array_equal(build_dataset(data("stl10", tmp_path)).train.x, train_x)


def test_stl10_missing_without_network_names_file_url_and_folder(tmp_path):
    with pytest.raises(DataError) as info:
        build_dataset(data("stl10", tmp_path / "cache"))
    message = str(info.value)
    assert "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz" in message
    assert str(tmp_path / "cache" / "stl10_binary.tar.gz") in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_stl10_truncated_archive_is_a_clear_error(tmp_path):
    write_stl10(tmp_path / "good")
    tmp_path.joinpath("stl10_binary.tar.gz").write_bytes((tmp_path / "good" / "stl10_binary.tar.gz").read_bytes()[:5000])
    with pytest.raises(DataError, match="not a readable STL-10 archive"):
        build_dataset(data("stl10", tmp_path))


# --- SVHN --------------------------------------------------------------------------------


def write_svhn(folder, name, labels, seed):
    """<name>_32x32.mat as published: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    from scipy.io import savemat

    x = asymmetric_images(len(labels), 32, seed)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / f"{name}_32x32.mat", {"X": np.moveaxis(x, 0, -1), "y": np.asarray(labels, np.uint8)[:, None]})
    return x


@pytest.mark.backend_agnostic
def test_svhn_digit_zero_stored_as_10_is_class_0(tmp_path):
    train_labels = [10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]
    train_x = write_svhn(tmp_path / "svhn", "train", train_labels, 1)
    test_x = write_svhn(tmp_path / "svhn", "test", [1, 10, 5], 2)
    ds = build_dataset(data("svhn", tmp_path))
    assert ds.info.class_names == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert ds.train.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    assert [ds.info.class_names[c] for c in ds.test.y] == ["1", "0", "5"]
    np.testing.assert_array_equal(ds.train.x, train_x)
    np.testing.assert_array_equal(ds.test.x, test_x)


def test_svhn_extra_joins_train_only_when_asked(tmp_path):
    write_svhn(tmp_path / "svhn", "train", [1, 2, 3], 1)
    write_svhn(tmp_path / "svhn", "test", [4], 2)
    assert len(build_dataset(data("svhn", tmp_path)).train) == 3  # no extra file needed
    with pytest.raises(DataError, match="extra_32x32.mat"):
        build_dataset(data("svhn", tmp_path, options={"svhn_extra": True}))
    extra_x = write_svhn(tmp_path / "svhn", "extra", [10, 9], 3)
    ds = build_dataset(data("svhn", tmp_path, options={"svhn_extra": True}))
    assert ds.train.y.tolist() == [1, 2, 3, 0, 9] and len(ds.test) == 1
    np.testing.assert_array_equal(ds.train.x[3:], extra_x)


def test_svhn_missing_without_network_names_file_and_url(tmp_path):
    with pytest.raises(DataError) as info:
        build_dataset(data("svhn", tmp_path))
    assert "http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in str(info.value)
    assert str(tmp_path / "svhn" / "train_32x32.mat") in str(info.value)


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file, truncated"])
def test_svhn_unreadable_file_is_a_clear_error(tmp_path, content):
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(content)
    with pytest.raises(DataError, match="not a readable SVHN file"):
        build_dataset(data("svhn", tmp_path))


# --- Dogs vs Cats ------------------------------------------------------------------------


def _jpeg(colour, seed, size=(40, 30)):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 21, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_petimages(cache, n_cat=10, n_dog=10):
    """kagglecatsanddogs_5340.zip as published (PetImages/Cat|Dog/<n>.jpg, a readme, Thumbs.db),
    with the kinds of broken files the public copy has. Returns {relative path: kind} of those."""
    broken = {}
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(png, format="PNG")
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "kagglecatsanddogs_5340.zip", "w") as zf:
        zf.writestr("readme[1].txt", "Cats and dogs")
        zf.writestr("CDLA-Permissive-2.0.pdf", b"%PDF-1.4")
        for folder, count, colour in (("Cat", n_cat, (200, 60, 60)), ("Dog", n_dog, (60, 60, 200))):
            for i in range(count):
                zf.writestr(f"PetImages/{folder}/{i}.jpg", _jpeg(colour, i, size=(40 + i, 30)))
        extra = {
            "PetImages/Cat/666.jpg": (b"", "empty"),
            "PetImages/Dog/11702.jpg": (b"", "empty"),
            "PetImages/Dog/2317.jpg": (png.getvalue(), "not_jpeg"),
            "PetImages/Cat/Thumbs.db": (b"\xd0\xcf\x11\xe0 thumbnail cache", "not_jpeg"),
            "PetImages/Dog/9999.jpg": (_jpeg((1, 1, 1), 0)[:200], "corrupt"),
        }
        for name, (payload, kind) in extra.items():
            zf.writestr(name, payload)
            broken[name] = kind
    return broken


def load_listing(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "path\treason"
    return dict(line.split("\t", 1) for line in lines[1:])


def test_cats_vs_dogs_skips_counts_and_lists_broken_files(tmp_path):
    broken = write_petimages(tmp_path)
    with pytest.warns(UserWarning, match="skipped 5 of 25 files") as record:
        ds = build_dataset(data("cats-vs-dogs", tmp_path, image_size=[24, 24]))
    listing = tmp_path / "cats-vs-dogs" / "skipped.tsv"
    assert str(listing) in " ".join(str(w.message) for w in record)
    listed = load_listing(listing)
    assert set(listed) == set(broken)
    for name, kind in broken.items():
        assert listed[name].startswith({"empty": "empty", "not_jpeg": "not a JPEG", "corrupt": "corrupt"}[kind])
    assert ds.notes["skipped_files"] == {"count": 5, "list": str(listing), "empty": 2, "not_jpeg": 2, "corrupt": 1}
    assert ds.info.class_names == ["cat", "dog"]
    assert Counter(ds.train.y.tolist()) == {0: 10, 1: 10}
    assert not set(ds.train.paths) & {str(tmp_path / "cats-vs-dogs" / name) for name in broken}
    assert ds.train.x.shape == (20, 24, 24, 3)
    # the colour of each kept image matches its label: paths and labels stayed together
    red_over_blue = ds.train.x[..., 0].mean((1, 2)) > ds.train.x[..., 2].mean((1, 2))
    assert (red_over_blue == (ds.train.y == 0)).all()


def test_cats_vs_dogs_test_fraction_gives_a_seeded_stratified_70_30_split(tmp_path):
    write_petimages(tmp_path, n_cat=40, n_dog=20)
    cfg = data("cats-vs-dogs", tmp_path, image_size=[16, 16], test_fraction=0.3)
    with pytest.warns(UserWarning, match="skipped"):
        first = build_dataset(cfg, seed=3)
    assert (len(first.train), len(first.test)) == (42, 18)
    assert Counter(first.test.y.tolist()) == {0: 12, 1: 6}
    assert not set(first.train.paths) & set(first.test.paths)
    with pytest.warns(UserWarning, match="skipped"):
        again, other = build_dataset(cfg, seed=3), build_dataset(cfg, seed=4)
    assert again.test.paths == first.test.paths
    assert other.test.paths != first.test.paths


def test_cats_vs_dogs_reads_its_extracted_copy_without_the_archive(tmp_path):
    write_petimages(tmp_path)
    with pytest.warns(UserWarning):
        first = build_dataset(data("cats-vs-dogs", tmp_path, image_size=[16, 16]))
    (tmp_path / "kagglecatsanddogs_5340.zip").unlink()
    listing = tmp_path / "cats-vs-dogs" / "skipped.tsv"
    checked = listing.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="skipped 5"):
        again = build_dataset(data("cats-vs-dogs", tmp_path, image_size=[16, 16]))
    assert listing.stat().st_mtime_ns == checked  # the check ran once
    assert again.train.paths == first.train.paths
    np.testing.assert_array_equal(again.train.x, first.train.x)


def test_cats_vs_dogs_default_size_and_streaming(tmp_path):
    write_petimages(tmp_path)
    with pytest.warns(UserWarning):
        ds = build_dataset(data("cats-vs-dogs", tmp_path, stream=True))
    assert isinstance(ds.train.x, FileImages) and ds.streamed
    assert ds.info.image_size == (128, 128)


def test_cats_vs_dogs_missing_without_network(tmp_path):
    with pytest.raises(DataError) as info:
        build_dataset(data("cats-vs-dogs", tmp_path))
    assert "kagglecatsanddogs_5340.zip" in str(info.value) and "download.microsoft.com" in str(info.value)


def test_cats_vs_dogs_dry_run_names_the_list_of_skipped_files(cli, tmp_path, tiny_cnn):
    write_petimages(tmp_path / "cache")
    result = cli(
        "train", "--dry-run", "--data-dir", tmp_path / "cache", "--set", "data.source=cats-vs-dogs",
        "--set", "data.image_size=[16,16]", "--set", "data.test_fraction=0.3", *tiny_cnn,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["skipped_files"]["count"] == 5
    assert summary["skipped_files"]["list"] == str(tmp_path / "cache" / "cats-vs-dogs" / "skipped.tsv")
    assert summary["class_names"] == ["cat", "dog"]
    assert summary["test_size"] == 6  # 30% of the 20 usable images


def test_new_data_sets_are_listed(cli):
    result = cli("datasets")
    assert result.exit_code == 0
    for name in ("stl10", "svhn", "cats-vs-dogs"):
        assert name in load_builtin_datasets()
        assert any(line.split()[0] == name for line in result.stdout.splitlines())


NO_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None  # as if not installed
from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
cache = sys.argv[1]
out = {}
for source, extra in (("stl10", {}), ("svhn", {}), ("cats-vs-dogs", {"image_size": [16, 16], "test_fraction": 0.3})):
    ds = build_dataset(DataConfig(source=source, data_dir=cache, val_fraction=0.0, **extra))
    out[source] = [len(ds.train), len(ds.test), ds.info.class_names[:2]]
out["tensorflow_loaded"] = any(m.split(".")[0] == "tensorflow" and v is not None for m, v in sys.modules.items())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_study_data_sets_load_without_tensorflow(tmp_path):
    import os
    import subprocess
    import sys

    write_stl10(tmp_path)
    write_svhn(tmp_path / "svhn", "train", [10, 1, 2], 1)
    write_svhn(tmp_path / "svhn", "test", [3], 2)
    write_petimages(tmp_path)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", NO_TENSORFLOW, str(tmp_path)],
        env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {
        "stl10": [20, 12, ["airplane", "bird"]],
        "svhn": [3, 1, ["0", "1"]],
        "cats-vs-dogs": [14, 6, ["cat", "dog"]],
        "tensorflow_loaded": False,
    }
    # without TensorFlow the check is PIL's alone, and it finds the same broken files
    assert len(load_listing(tmp_path / "cats-vs-dogs" / "skipped.tsv")) == 5
