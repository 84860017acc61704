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
MAKEFILE = (REPO / "Makefile").read_text()
# What the Makefile declares: target -> config (experiments) and target -> study file.
TARGETS = dict(re.findall(r"\$\(call experiment,([a-z0-9-]+),([^)]+)\)", MAKEFILE))
STUDIES = dict(re.findall(r"\$\(call study,([a-z0-9-]+),([^)]+)\)", MAKEFILE))


def test_every_shipped_config_is_reached_by_a_make_target():
    named = set(TARGETS.values()) | set(STUDIES.values()) | set(re.findall(r"--config (configs/\S+\.yaml)", MAKEFILE))
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")}
    assert shipped - named == set(), "a config no make target runs"
    assert named - shipped == set(), "a make target whose file does not exist"


def expand(pattern):
    """Shell-style brace expansion: 'a{1,2}b' -> ['a1b', 'a2b']."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [word for option in match.group(1).split(",") for word in expand(head + option + tail)]


def readme_rows():
    """(targets, config patterns) per row of the README's experiments table. A cell item that
    starts with '-' replaces the last '-part' of the item before it (`cifar-vgg16-last2` / `-last3`)."""
    rows = []
    for line in (REPO / "README.md").read_text().splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        targets = []
        for item in re.findall(r"`([^`]+)`", cells[1]):
            if item.startswith("-"):
                item = targets[-1].rsplit("-", 1)[0] + item
            targets += expand(item)
        configs = [c for item in re.findall(r"`([^`]+)`", cells[2]) for c in expand(item)]
        rows.append((targets, configs))
    return rows


def test_the_readme_table_lists_every_make_target_with_its_config():
    import fnmatch

    declared = {**TARGETS, **STUDIES, "demo": re.search(r"^demo:.*\n\t.*--config (\S+)", MAKEFILE, re.M).group(1)}
    listed = {}
    for targets, configs in readme_rows():
        for target in targets:
            listed[target] = configs
    assert set(listed) == set(declared)
    for target, config in declared.items():
        assert any(fnmatch.fnmatch(config, pattern) for pattern in listed[target]), (target, config, listed[target])


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


@pytest.mark.parametrize("target", [t for t in TARGETS if t.startswith("catsdogs-cnn")])
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
