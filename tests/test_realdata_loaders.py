"""The loaders on real copies of the seed's data sets (issue 19), not generated files.

Real copies (shared/docs/real-data.md says where they come from and how they are extracted):
  $KERASCLF_REALDATA (default: ../realdata beside the checkout) holding tiny-imagenet-200/
  (the official layout, 200 classes), cats_and_dogs_filtered/ (Google's train/ validation/
  layout) and flowers/ (5 classes x 600 photos);
  ../shared/data/catsdogs-small/catsdogs-small.tar.xz ($KERASCLF_SHARED), 500 Dogs vs Cats
  photos that CI has, from which the Microsoft PetImages and Kaggle train/cat.N.jpg layouts
  are built.
Each test skips, naming the path it looked for, when its copy is absent. None trains more
than one tiny epoch.
"""

import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CNN

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

HERE = Path(__file__).resolve()
REALDATA = Path(os.environ.get("KERASCLF_REALDATA", HERE.parents[2] / "realdata"))
SHARED = Path(os.environ.get("KERASCLF_SHARED", HERE.parents[2] / "shared"))
TINY = REALDATA / "tiny-imagenet-200"
FILTERED = REALDATA / "cats_and_dogs_filtered"
FLOWERS = REALDATA / "flowers"
CATSDOGS_SMALL = SHARED / "data" / "catsdogs-small" / "catsdogs-small.tar.xz"


def need(path):
    if not path.exists():
        pytest.skip(f"{path} is absent (real copies: shared/docs/real-data.md; KERASCLF_REALDATA / KERASCLF_SHARED point elsewhere)")
    return path


@pytest.fixture(scope="module")
def catsdogs_small(tmp_path_factory):
    """The 500 photos, extracted once: {"cats": [paths], "dogs": [paths]} (Kaggle's cat.N.jpg names)."""
    need(CATSDOGS_SMALL)
    out = tmp_path_factory.mktemp("catsdogs-small")
    with tarfile.open(CATSDOGS_SMALL) as tar:
        tar.extractall(out, filter="data")
    root = next(p for p in out.rglob("cats") if p.is_dir()).parent
    return {name: sorted((root / name).glob("*.jpg")) for name in ("cats", "dogs")}


# --- Tiny-ImageNet: the official tree --------------------------------------------------------


def test_tiny_imagenet_full_tree_lists_200_classes_500_train_and_50_val_each(monkeypatch):
    """All 200 classes: the listing and val_annotations.txt parsing on the real tree (pixels
    not decoded here: first:50 below decodes)."""
    from kerasclf.data.sources import tinyimagenet

    need(TINY / "wnids.txt")
    decoded = {}

    def fake_decode(paths, size):
        decoded[len(decoded)] = paths
        return np.zeros((len(paths), 1, 1, 3), np.uint8), list(range(len(paths)))

    monkeypatch.setattr("kerasclf.data.images.decode_files", fake_decode)
    raw = tinyimagenet.read_tiny_imagenet(TINY)
    assert len(raw.class_names) == len(set(raw.class_names)) == 200
    assert raw.class_names[:2] == ["Egyptian cat", "reel"]  # wnids.txt order, words.txt's first synonym
    train, test = raw.splits["train"], raw.splits["test"]
    assert Counter(train.y.tolist()) == {c: 500 for c in range(200)}
    assert Counter(test.y.tolist()) == {c: 50 for c in range(200)}
    assert all(Path(p).is_file() for p in test.paths[:: 97])
    assert all("/val/images/" in p for p in test.paths)


def test_tiny_imagenet_first_50_decodes_at_64_pixels(tmp_path):
    need(TINY / "wnids.txt")
    ds = build_dataset(DataConfig(source="tiny-imagenet", data_dir=str(REALDATA), classes="first:50", val_fraction=0.1))
    assert ds.info.num_classes == 50 and ds.info.class_names[0] == "Egyptian cat"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (22500, 2500, 2500)
    assert ds.train.x.shape[1:] == (64, 64, 3) and ds.train.x.dtype == np.uint8
    assert Counter(ds.test.y.tolist()) == {c: 50 for c in range(50)}
    assert 60 < np.mean(ds.info.mean) < 140  # real photos, not blank decodes


# --- folder: on real photo folders ----------------------------------------------------------


def test_folder_on_cats_and_dogs_filtered_uses_validation_as_the_val_split_and_says_so(caplog):
    need(FILTERED / "validation")
    cfg = DataConfig(source=f"folder:{FILTERED}", image_size=[64, 64], val_fraction=0.1, test_fraction=0.3)
    with caplog.at_level("INFO", logger="kerasclf"):
        ds = build_dataset(cfg)
    assert ds.info.class_names == ["cats", "dogs"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1400, 1000, 600)
    assert all("/validation/" in p for p in ds.val.paths)
    assert all("/train/" in p for p in ds.train.paths + ds.test.paths)
    assert Counter(ds.val.y.tolist()) == {0: 500, 1: 500}
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "validation/ as the val split; data.val_fraction does not apply" in message


def test_folder_on_flowers_resizes_photos_of_many_sizes():
    need(FLOWERS / "daisy")
    cfg = DataConfig(source=f"folder:{FLOWERS}", image_size=[48, 64], val_fraction=0.1, test_fraction=0.2)
    ds = build_dataset(cfg)
    assert ds.info.class_names == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 3000
    assert Counter(ds.test.y.tolist()) == {c: 120 for c in range(5)}
    assert ds.train.x.shape[1:] == (48, 64, 3)


def _peak_rss_of_data_report(root, out):
    """Peak RSS (bytes) of `kerasclf data-report` on folder:root with data.image_size unset, in its own process."""
    code = (
        "import resource, sys\n"
        "from kerasclf.cli import main\n"
        "try:\n"
        f"    main(['data-report', '--data', 'folder:{root}', '--out', '{out}'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parents[1], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split("PEAK")[-1].split()[0])


# --- the cats-vs-dogs source on Microsoft's and Kaggle's layouts -----------------------------


def _petimages(files, cache):
    for name, folder in (("cats", "Cat"), ("dogs", "Dog")):
        (cache / "cats-vs-dogs" / "PetImages" / folder).mkdir(parents=True)
        for i, path in enumerate(files[name]):
            os.symlink(path, cache / "cats-vs-dogs" / "PetImages" / folder / f"{i}.jpg")


def _kaggle(files, cache):
    (cache / "cats-vs-dogs" / "train").mkdir(parents=True)
    for name in ("cats", "dogs"):
        for path in files[name]:
            os.symlink(path, cache / "cats-vs-dogs" / "train" / path.name)  # cat.N.jpg / dog.N.jpg


@pytest.mark.parametrize("layout", [_petimages, _kaggle], ids=["petimages", "kaggle-flat"])
def test_cats_vs_dogs_source_reads_the_layout_offline(catsdogs_small, tmp_path, layout):
    layout(catsdogs_small, tmp_path)
    cfg = DataConfig(source="cats-vs-dogs", data_dir=str(tmp_path), image_size=[32, 32], val_fraction=0.1, test_fraction=0.3)
    ds = build_dataset(cfg)  # no network in tests: a missed layout would try the download and fail
    assert ds.info.class_names == ["cat", "dog"]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 500
    assert Counter(ds.test.y.tolist()) == {0: 75, 1: 75}
    every = ds.train.paths + ds.val.paths + ds.test.paths
    labels = np.concatenate([ds.train.y, ds.val.y, ds.test.y])
    # labels follow the photos: a cat photo is class 0 whatever the layout named it
    by_target = {os.path.realpath(p): y for p, y in zip(every, labels.tolist())}
    assert all(by_target[str(p.resolve())] == 0 for p in catsdogs_small["cats"])
    assert all(by_target[str(p.resolve())] == 1 for p in catsdogs_small["dogs"])
    assert (tmp_path / "cats-vs-dogs" / "skipped.tsv").is_file()


def test_one_tiny_epoch_on_the_kaggle_layout(catsdogs_small, tmp_path, cli):
    _kaggle(catsdogs_small, tmp_path / "cache")
    result = cli(
        "train", "--config", HERE.parents[1] / "configs" / "catsdogs" / "cnn_adam.yaml", "--data-dir", tmp_path / "cache",
        *TINY_CNN, "--set", "data.image_size=[32,32]", "--set", "train.epochs=1", "--set", f"train.log_dir={tmp_path / 'logs'}",
    )
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "logs").iterdir())
    assert (run / "best.keras").is_file() and (run / "metrics.json").is_file()
