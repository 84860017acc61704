"""The STL-10 / SVHN / Dogs vs Cats experiments: each make target runs its config, and the
configs train (1 epoch, small data in the real formats) or at least build."""

import json
import re
from pathlib import Path

import pytest
from test_study_datasets import write_petimages, write_stl10, write_svhn

from kerasclf.config import load_config
from kerasclf.data.info import DatasetInfo
from kerasclf.models import build_model

REPO = Path(__file__).resolve().parents[1]
TARGETS = {
    "stl10-resnet50-finetune": "configs/stl10/resnet50_finetune.yaml",
    "svhn-cnn": "configs/svhn/cnn.yaml",
    "svhn-resnet18": "configs/svhn/resnet18.yaml",
    "svhn-resnet18-aug": "configs/svhn/resnet18_aug.yaml",
    "catsdogs-cnn-adam": "configs/catsdogs/cnn_adam.yaml",
    "catsdogs-cnn-sgd-bs1": "configs/catsdogs/cnn_sgd_bs1.yaml",
    "catsdogs-cnn-sgd-bs64": "configs/catsdogs/cnn_sgd_bs64.yaml",
    "catsdogs-cnn-momentum": "configs/catsdogs/cnn_momentum.yaml",
}


def test_make_targets_run_their_configs():
    makefile = (REPO / "Makefile").read_text()
    declared = dict(re.findall(r"\$\(call experiment,([a-z0-9-]+),([^)]+)\)", makefile))
    for target, config in TARGETS.items():
        assert declared.get(target) == config
        assert (REPO / config).is_file()


def test_readme_lists_every_target():
    readme = (REPO / "README.md").read_text()
    for target in TARGETS:
        assert f"`{target}`" in readme, target


def run(cli, config, cache, logs, *overrides):
    result = cli(
        "train", "--config", REPO / config, "--data-dir", cache, "--set", "train.epochs=1",
        "--set", "train.verbose=0", "--set", f"train.log_dir={logs}", *overrides,
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = Path(logs).iterdir()
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_svhn_cnn_one_epoch_on_small_svhn_files(cli, tmp_path):
    labels = [(i % 10) or 10 for i in range(120)]  # every digit, 0 stored as 10
    write_svhn(tmp_path / "cache" / "svhn", "train", labels, 1)
    write_svhn(tmp_path / "cache" / "svhn", "test", labels[:40], 2)
    run_dir, metrics = run(cli, TARGETS["svhn-cnn"], tmp_path / "cache", tmp_path / "logs", "--set", "data.batch_size=32")
    assert metrics["class_names"] == [str(d) for d in range(10)]
    assert (metrics["train_size"], metrics["val_size"], metrics["test_size"]) == (108, 12, 40)
    assert metrics["epochs_run"] == 1 and metrics["test_accuracy"] is not None
    report = (run_dir / "eval" / "test" / "report.md").read_text()
    assert "f1-score" in report or "F1" in report  # the sklearn report behind "F1 0.885"


@pytest.mark.slow
def test_catsdogs_cnn_adam_one_epoch_on_a_small_petimages_zip(cli, tmp_path):
    write_petimages(tmp_path / "cache", n_cat=15, n_dog=15)
    with pytest.warns(UserWarning, match="skipped 5"):
        run_dir, metrics = run(
            cli, TARGETS["catsdogs-cnn-adam"], tmp_path / "cache", tmp_path / "logs",
            "--set", "data.image_size=[32,32]", "--set", "data.batch_size=8",
        )
    assert metrics["class_names"] == ["cat", "dog"]
    assert metrics["test_size"] == 9 and metrics["train_size"] + metrics["val_size"] == 21  # 70:30 of 30
    assert metrics["skipped_files"]["count"] == 5
    assert (run_dir / "eval" / "test" / "report.md").is_file()


@pytest.mark.parametrize("target", [t for t in TARGETS if t.startswith("catsdogs")])
def test_catsdogs_model_has_3_conv_2_batchnorm_3_dense(target):
    cfg = load_config(REPO / TARGETS[target])
    model = build_model(cfg, DatasetInfo(source="cats-vs-dogs", class_names=["cat", "dog"], image_size=(128, 128)))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert (kinds.count("Conv2D"), kinds.count("BatchNormalization"), kinds.count("Dense")) == (3, 2, 3)
    assert model.output_shape == (None, 2)


@pytest.mark.slow
def test_stl10_resnet50_freezes_its_early_layers(cli, tmp_path):
    write_stl10(tmp_path / "cache")
    result = cli(
        "train", "--dry-run", "--config", REPO / TARGETS["stl10-resnet50-finetune"], "--data-dir", tmp_path / "cache",
        "--set", "model.weights=none", "--set", "data.image_size=[64,64]",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["class_names"][:3] == ["airplane", "bird", "car"]
    frozen = " ".join(summary["frozen_layers"]) if "frozen_layers" in summary else json.dumps(summary)
    assert "conv3_block4" in frozen and "conv2_block1" in frozen
    assert 0 < summary["trainable_weight_layers"] < summary["weight_layers"]
