"""`kerasclf data-report`: counts per split, exact duplicates between splits, channel
statistics, image sizes from file headers, figures, report.md and report.json."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_study_datasets import write_svhn

from kerasclf.config import DataConfig
from kerasclf.evaluation.data_report import build_report_dataset, write_data_report

# ../shared beside the checkout (KERASCLF_SHARED points elsewhere, e.g. from a git worktree)
SHARED = Path(os.environ.get("KERASCLF_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CIFAR_JPEG = SHARED / "data" / "cifar10-jpeg" / "train.tar.xz"


def png_ok(path):
    with Image.open(path) as image:
        return image.format == "PNG" and min(image.size) > 100


def test_split_layout_counts_sizes_and_a_duplicate_between_train_and_test(tmp_path, make_image_folder):
    root = tmp_path / "root"
    make_image_folder(root / "train", {"a": 6, "b": 4}, sizes=[(10, 12), (20, 16)])
    make_image_folder(root / "test", {"a": 2, "b": 3}, size=(14, 14))
    shutil.copy(root / "train" / "b" / "b001.png", root / "test" / "b" / "copy_of_b001.png")
    dataset = build_report_dataset(DataConfig(source=f"folder:{root}", image_size=[8, 8], val_fraction=0.0))
    numbers = write_data_report(dataset, tmp_path / "out")["numbers"]

    assert numbers["class_names"] == ["a", "b"]
    assert numbers["counts"] == {"train": [6, 4], "test": [2, 4]}
    assert numbers["total_per_class"] == [8, 8]
    between = numbers["duplicates"]["between"]["train/test"]
    assert between["count"] == 1
    assert between["examples"] == [[str(root / "train" / "b" / "b001.png"), str(root / "test" / "b" / "copy_of_b001.png")]]
    assert numbers["duplicates"]["within"] == {"train": 0, "test": 0}
    # sizes as stored in the files (not the 8x8 the models get): 10x12 and 20x16 alternate
    assert numbers["image_size_counts"]["train"] == [[10, 12, 5], [20, 16, 5]]
    assert numbers["image_size_counts"]["test"] == [[14, 14, 5], [20, 16, 1]]  # the copy is 20x16
    # channel statistics over every pixel of the images as fed (decoded at 8x8)
    train = np.asarray(dataset.train.x).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(numbers["channel_stats"]["train"]["mean"], train.mean(0), atol=1e-3)
    np.testing.assert_allclose(numbers["channel_stats"]["train"]["std"], train.std(0), atol=1e-3)

    out = tmp_path / "out"
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"] == numbers["counts"] and saved["duplicates"] == numbers["duplicates"]
    markdown = (out / "report.md").read_text()
    for name in saved["figures"].values():
        assert f"]({name})" in markdown and png_ok(out / name)
    assert "| b | 4 | 4 | 8 |" in markdown


def test_carved_validation_split_has_no_duplicates_of_train_unless_the_folder_has_them(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "pool", {"a": 20, "b": 20}, size=(6, 6))
    cfg = DataConfig(source=f"folder:{root}", val_fraction=0.25)
    numbers = write_data_report(build_report_dataset(cfg), tmp_path / "clean")["numbers"]
    assert numbers["counts"] == {"train": [15, 15], "val": [5, 5]}
    assert numbers["duplicates"]["between"]["train/val"]["count"] == 0
    for i in range(20):  # every "b" image is also in "a" under another name: duplicates wherever they land
        shutil.copy(root / "b" / f"b{i:03d}.png", root / "a" / f"dup{i:03d}.png")
    numbers = write_data_report(build_report_dataset(cfg), tmp_path / "dirty")["numbers"]
    dup = numbers["duplicates"]
    assert sum(dup["within"].values()) + dup["between"]["train/val"]["count"] == 20


def test_cli_report_on_svhn_files(cli, tmp_path):
    cache = tmp_path / "cache"
    train = write_svhn(cache / "svhn", "train", [10, 1, 1, 2, 2, 2, 10], 1)
    from scipy.io import savemat

    test = np.concatenate([train[:1], np.zeros((2, 32, 32, 3), np.uint8)])  # the first train image again
    savemat(cache / "svhn" / "test_32x32.mat", {"X": np.moveaxis(test, 0, -1), "y": np.array([[10], [3], [3]], np.uint8)})
    out = tmp_path / "report"
    result = cli("data-report", "--data", "svhn", "--data-dir", cache, "--out", out, "--set", "data.val_fraction=0")
    assert result.exit_code == 0, result.output
    assert "exact duplicates train/test: 1" in result.stdout
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["counts"]["train"] == [2, 2, 3, 0, 0, 0, 0, 0, 0, 0]  # the two 10s are digit 0
    assert numbers["counts"]["test"] == [1, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    assert numbers["duplicates"]["within"]["test"] == 1  # the two black images
    assert numbers["image_size_counts"] == {"train": [[32, 32, 7]], "test": [[32, 32, 3]]}
    assert all(png_ok(out / name) for name in numbers["figures"].values())


def test_cli_report_on_unknown_data_is_a_clear_error(cli, user_error, tmp_path):
    user_error(cli("data-report", "--data", "svhm", "--out", tmp_path), "svhm", "svhn")
    user_error(cli("data-report", "--data", f"folder:{tmp_path / 'nothing'}"), "does not exist")


@pytest.mark.realdata
@pytest.mark.slow
def test_cifar_jpeg_folder_has_5000_per_class_and_no_duplicates_between_train_and_val(cli, tmp_path):
    if not CIFAR_JPEG.is_file():
        pytest.skip(f"{CIFAR_JPEG} is absent")
    import tarfile

    with tarfile.open(CIFAR_JPEG) as tar:
        tar.extractall(tmp_path, filter="data")
    out = tmp_path / "report"
    result = cli("data-report", "--data", f"folder:{tmp_path / 'train'}", "--out", out)
    assert result.exit_code == 0, result.output
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["total_per_class"] == [5000] * 10
    assert numbers["counts"]["val"] == [500] * 10
    assert numbers["duplicates"]["between"]["train/val"]["count"] == 0
