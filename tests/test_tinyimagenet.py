"""Tiny-ImageNet: a small tree in the official layout (and zipped, as downloaded), read offline."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
from kerasclf.errors import ConfigError, DataError
from tests.conftest import write_image

# wnids.txt order is not sorted order: "first:N" must follow the file.
WNIDS = ["n02124075", "n01443537", "n03126707", "n02012849"]
WORDS = {  # words.txt covers all of WordNet; two of our classes share the first synonym "crane"
    "n00000001": "entity",
    "n01443537": "goldfish, Carassius auratus",
    "n02124075": "Egyptian cat",
    "n03126707": "crane",
    "n02012849": "crane",
    "n09999999": "unrelated, other",
}
COLOURS = {"n02124075": (220, 30, 30), "n01443537": (30, 220, 30), "n03126707": (30, 30, 220), "n02012849": (220, 220, 30)}


def tile(wnid, seed):
    """A 64x64 image of the class colour (survives JPEG)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-15, 16, size=(64, 64, 3))
    return np.clip(np.array(COLOURS[wnid]) + noise, 0, 255).astype(np.uint8)


def write_tiny_imagenet(parent, train_per_class=3, val_per_class=2):
    """parent/tiny-imagenet-200/ in the official layout; returns {split: [(path, wnid)]}."""
    root = Path(parent) / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    (root / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in WORDS.items()))
    written = {"train": [], "test": []}
    for wnid in WNIDS:
        boxes = []
        for i in range(train_per_class):
            name = f"{wnid}_{i}.JPEG"
            written["train"].append((write_image(root / "train" / wnid / "images" / name, tile(wnid, i), "JPEG"), wnid))
            boxes.append(f"{name}\t0\t0\t63\t63")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    annotations, k = [], 0
    for _ in range(val_per_class):  # classes interleaved, as in the official val folder
        for wnid in reversed(WNIDS):
            name = f"val_{k}.JPEG"
            written["test"].append((write_image(root / "val" / "images" / name, tile(wnid, 100 + k), "JPEG"), wnid))
            annotations.append(f"{name}\t{wnid}\t{k}\t1\t50\t60")
            k += 1
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    write_image(root / "test" / "images" / "test_0.JPEG", tile(WNIDS[0], 999), "JPEG")  # unlabelled
    return root, written


def zip_tree(root, target):
    with zipfile.ZipFile(target, "w") as z:
        for path in sorted(root.rglob("*")):
            z.write(path, path.relative_to(root.parent).as_posix())
    return target


def config(cache, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source="tiny-imagenet", data_dir=str(cache), **kwargs)


def nearest_class(image, wnids):
    mean = image.reshape(-1, 3).mean(0)
    return wnids[int(np.argmin([np.abs(mean - COLOURS[w]).sum() for w in wnids]))]


def test_extracted_copy_read_offline_with_names_and_val_annotations(tmp_path):
    write_tiny_imagenet(tmp_path / "cache")
    ds = build_dataset(config(tmp_path / "cache"))
    assert ds.info.class_names == ["Egyptian cat", "goldfish", "crane (n03126707)", "crane (n02012849)"]
    assert ds.info.image_size == (64, 64)
    assert np.bincount(ds.train.y).tolist() == [3, 3, 3, 3]
    assert np.bincount(ds.test.y).tolist() == [2, 2, 2, 2]  # official val -> test, labels from the annotations
    for split in (ds.train, ds.test):
        for image, label in zip(split.x, split.y):
            assert nearest_class(image, WNIDS) == WNIDS[label]
    assert not any("test_0" in p for p in ds.train.paths + ds.test.paths)  # unlabelled test images unused


def test_first_n_follows_wnids_order_and_decodes_only_those(tmp_path):
    write_tiny_imagenet(tmp_path / "cache")
    ds = build_dataset(config(tmp_path / "cache", classes="first:2"))
    assert ds.info.class_names == ["Egyptian cat", "goldfish"]
    assert all(Path(p).parent.parent.name in WNIDS[:2] for p in ds.train.paths)
    assert len(ds.test) == 4 and sorted(set(ds.test.y.tolist())) == [0, 1]
    for image, label in zip(ds.test.x, ds.test.y):
        assert nearest_class(image, WNIDS[:2]) == WNIDS[label]


def test_classes_by_name_keep_the_given_order(tmp_path):
    write_tiny_imagenet(tmp_path / "cache")
    ds = build_dataset(config(tmp_path / "cache", classes=["crane (n02012849)", "Egyptian cat"]))
    assert ds.info.class_names == ["crane (n02012849)", "Egyptian cat"]
    for image, label in zip(ds.train.x, ds.train.y):
        assert nearest_class(image, ["n02012849", "n02124075"]) == ["n02012849", "n02124075"][label]


def test_bad_class_choice_is_a_config_error(tmp_path):
    write_tiny_imagenet(tmp_path / "cache")
    with pytest.raises(ConfigError, match="from 1 to 4"):
        build_dataset(config(tmp_path / "cache", classes="first:9"))
    with pytest.raises(ConfigError, match='Did you mean "goldfish"'):
        build_dataset(config(tmp_path / "cache", classes=["goldfsh"]))


def test_zip_in_cache_is_extracted_once_then_read_without_it(tmp_path):
    root, _ = write_tiny_imagenet(tmp_path / "src")
    cache = tmp_path / "cache"
    cache.mkdir()
    zip_tree(root, cache / "tiny-imagenet-200.zip")  # what the download leaves
    first = build_dataset(config(cache, classes="first:3"))
    assert (cache / "tiny-imagenet-200" / "wnids.txt").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folder left
    (cache / "tiny-imagenet-200.zip").unlink()
    again = build_dataset(config(cache, classes="first:3"))
    np.testing.assert_array_equal(first.train.x, again.train.x)
    assert first.info.class_names == ["Egyptian cat", "goldfish", "crane (n03126707)"]


def test_missing_without_network_says_where_and_what(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        build_dataset(config(cache))
    message = str(info.value)
    for fragment in ("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", str(cache)):
        assert fragment in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unreadable_zip_is_a_data_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny-imagenet-200.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable zip"):
        build_dataset(config(cache))
    assert [p.name for p in cache.iterdir()] == ["tiny-imagenet-200.zip"]


def test_zip_of_something_else_is_a_data_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "tiny-imagenet-200.zip", "w") as z:
        z.writestr("other/readme.txt", "hello")
    with pytest.raises(DataError, match="not the Tiny-ImageNet zip"):
        build_dataset(config(cache))


def test_incomplete_copy_names_the_missing_file(tmp_path):
    root, _ = write_tiny_imagenet(tmp_path / "cache")
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt is missing"):
        build_dataset(config(tmp_path / "cache"))


def test_listed_as_a_data_set(cli):
    result = cli("datasets")
    assert result.exit_code == 0 and "tiny-imagenet" in result.stdout


@pytest.mark.parametrize("variant", ["ce", "triplet", "center"])
def test_shipped_study_configs_are_valid_and_have_make_targets(variant):
    import subprocess

    from kerasclf.config import load_config
    from kerasclf.data.sampler import build_sampler

    repo = Path(__file__).resolve().parents[1]
    path = repo / "configs" / "tinyimagenet" / f"resnet18_{variant}.yaml"
    cfg = load_config(path)  # every key checked, the loss.aux rules included
    assert cfg.loss.aux == ("none" if variant == "ce" else variant)
    build_sampler(cfg.data, np.repeat(np.arange(50), 10), seed=0)  # P x K (if any) fits 50 classes and the batch
    dry = subprocess.run(["make", "-n", f"tinyimagenet50-resnet18-{variant}"], cwd=repo, capture_output=True, text=True)
    assert dry.returncode == 0 and str(path.relative_to(repo)) in dry.stdout
