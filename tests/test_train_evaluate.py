"""Train + evaluate end to end on small data: the run directory, the report, the checkpoint."""

import csv
import json
import random
import re
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_JPEG = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "train.tar.xz"

TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def linked_files(report_md):
    """Targets of markdown links and images, minus URLs and in-page anchors."""
    links = re.findall(r"\]\(([^)\s]+)\)", Path(report_md).read_text())
    return [link for link in links if not re.match(r"^[a-z]+://|^#", link)]


def recomputed_predictions(checkpoint, classes, split_name="test", source="synthetic"):
    """(y_true, y_pred) from the checkpoint's own predictions on the split, outside kerasclf's evaluate."""
    import keras

    import kerasclf.layers.preprocessing  # noqa: F401  registers the custom layers for safe_mode
    from kerasclf.config import DataConfig
    from kerasclf.data import build_dataset

    model = keras.saving.load_model(str(checkpoint), safe_mode=True)
    split = build_dataset(DataConfig(source=source, classes=classes)).split(split_name)
    probs = model.predict(split.x, batch_size=64, verbose=0)
    return split.y, probs.argmax(-1), model


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_train_then_evaluate_end_to_end(cli, tmp_path):
    from sklearn.metrics import accuracy_score

    from kerasclf.config import load_config

    logs = tmp_path / "logs"
    classes = ["class3", "class0", "class1"]  # a subset, in an order of our own
    overrides = [
        "data.source=synthetic", f"data.classes=[{', '.join(classes)}]", *TINY, "train.epochs=2", "train.verbose=0",
        "train.eval_test_each_epoch=true", "train.evaluate_after=false",
        f"train.log_dir={logs}", "train.run_name=e2e",
    ]
    result = cli("train", *sets(*overrides))
    assert result.exit_code == 0, (result.output, result.exception)
    run = logs / "e2e"
    assert f"Run directory: {run}" in result.stdout
    assert "Report:" not in result.stdout and not (run / "eval").exists()  # evaluate_after=false

    # --- the run directory
    for name in ("config.yaml", "history.csv", "best.keras", "last.keras", "metrics.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert load_config(run / "config.yaml") == load_config(None, overrides)

    history = read_history(run / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2"]  # one row per finished epoch, numbered as best_epoch
    for column in ("accuracy", "loss", "val_accuracy", "val_loss", "learning_rate", "test_accuracy"):
        assert column in history[0], column

    metrics = json.loads((run / "metrics.json").read_text())
    val_acc = [float(row["val_accuracy"]) for row in history]
    assert metrics["best_epoch"] == int(np.argmax(val_acc)) + 1
    assert metrics["best_val_accuracy"] == pytest.approx(max(val_acc))
    assert metrics["wall_seconds"] > 0
    expected_params = (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 8 + 8) + (8 * 16 * 16 * 16 + 16) + (16 * 3 + 3)
    assert metrics["params_total"] == metrics["params_trainable"] == expected_params
    line = json.loads(result.stdout.splitlines()[0])  # the run's headline figures, as metrics.json has them
    assert {"best_val_accuracy", "best_epoch", "test_accuracy", "wall_seconds"} <= set(line)
    assert line == {k: metrics[k] for k in line}

    # --- the checkpoint reloads in safe mode and carries the class names
    y_true, y_pred, model = recomputed_predictions(run / "best.keras", classes)
    assert model.get_layer("labels").class_names == classes
    assert len(y_true) == 75 and set(y_true.tolist()) == {0, 1, 2}
    accuracy = accuracy_score(y_true, y_pred)
    assert metrics["test_accuracy"] == pytest.approx(accuracy)

    # --- evaluate
    result = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "test")
    assert result.exit_code == 0, (result.output, result.exception)
    out = run / "eval" / "test"
    report = out / "report.md"
    assert f"Report: {report}" in result.stdout
    links = linked_files(report)
    assert any(link.endswith(".png") for link in links)
    for link in links:
        assert (out / link).is_file(), f"report.md links to a missing file: {link}"
    evaluated = json.loads((out / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(accuracy)
    assert evaluated["size"] == len(y_true) == 75
    assert evaluated["class_names"] == classes
    confusion = np.array(evaluated["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == 75
    assert np.trace(confusion) == int((y_true == y_pred).sum())
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = evaluated["class_names"]
    assert [names.index(r["pred"]) for r in rows] == y_pred.tolist()

    # --- the checkpoint alone, moved out of its run directory, still evaluates (class names,
    # class subset and data source travel inside it)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = Path(shutil.move(run / "best.keras", elsewhere / "model.keras"))
    result = cli("evaluate", "--checkpoint", moved, "--split", "test")
    assert result.exit_code == 0, (result.output, result.exception)
    alone = json.loads((elsewhere / "eval" / "test" / "metrics.json").read_text())
    assert alone["class_names"] == classes
    assert alone["accuracy"] == pytest.approx(accuracy)
    assert alone["size"] == 75


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_cnn_learns_the_synthetic_data_set(tmp_path):
    from kerasclf.config import load_config
    from kerasclf.training.run import train

    cfg = load_config(None, [
        "data.source=synthetic", "model.name=cnn", "model.filters=[8, 16]", "model.dense=[32]",
        "train.epochs=4", "train.verbose=0", f"train.log_dir={tmp_path}", "optim.lr=0.002",
    ])
    run_dir, metrics = train(cfg)
    # 4 balanced classes: chance is 0.25; this set is learnt to > 0.95 in 2-4 epochs.
    assert metrics["test_accuracy"] >= 0.8, metrics
    assert metrics["final_train_accuracy"] > 0.5
    assert len(read_history(run_dir / "history.csv")) == metrics["epochs_run"] == 4


def _extract_subset(archive, dest, classes, per_class, seed=0):
    """Copy a seeded random `per_class` files of each class in `classes` from the tar to dest/<class>/."""
    with tarfile.open(archive, "r:xz") as tar:
        members = defaultdict(list)
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[1] in classes:
                members[parts[1]].append(member)
        rng = random.Random(seed)
        chosen = {c: sorted(rng.sample(members[c], per_class), key=lambda m: m.name) for c in classes}
        for c, picked in chosen.items():
            (dest / c).mkdir(parents=True, exist_ok=True)
            for member in picked:
                data = tar.extractfile(member).read()
                (dest / c / Path(member.name).name).write_bytes(data)
    return dest


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason=f"{CIFAR10_JPEG} is not here")
def test_real_cifar10_jpeg_subset_trains_above_chance(cli, tmp_path):
    classes = ["airplane", "automobile", "frog"]
    root = _extract_subset(CIFAR10_JPEG, tmp_path / "cifar3", classes, per_class=200)
    logs = tmp_path / "logs"
    result = cli("train", *sets(
        f"data.source=folder:{root}", "data.val_fraction=0.15", "data.test_fraction=0.25",
        "data.batch_size=32", "model.name=cnn", "model.filters=[16, 32]", "model.dense=[64]",
        "train.epochs=2", "train.verbose=0", "train.evaluate_after=false",
        f"train.log_dir={logs}", "train.run_name=real",
    ))
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((logs / "real" / "metrics.json").read_text())
    assert metrics["class_names"] == sorted(classes)
    assert metrics["test_size"] == 150 and metrics["image_size"] == [32, 32]
    assert metrics["test_accuracy"] > 0.45, metrics  # chance: 1/3; seeds 0-2 gave 0.60-0.69
