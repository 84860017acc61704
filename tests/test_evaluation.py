"""Behavioural tests for kerasclf.evaluation (numpy / scikit-learn / matplotlib only)."""

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from kerasclf.evaluation import figures
from kerasclf.evaluation.metrics import (
    classification_summary,
    misclassified_indices,
    roc_curves,
)
from kerasclf.evaluation.report import write_report


def make_predictions(n_classes, size, accuracy=0.7, seed=0):
    """Labels and softmax-like probabilities whose argmax is right about `accuracy` of the time."""
    rng = np.random.default_rng(seed)
    y_true = np.arange(size) % n_classes  # every class present
    rng.shuffle(y_true)
    y_prob = rng.dirichlet(np.ones(n_classes), size=size)
    right = rng.random(size) < accuracy
    y_prob[right, y_true[right]] += 1.0  # makes the true class the argmax
    y_prob /= y_prob.sum(axis=1, keepdims=True)
    return y_true, y_prob


def make_images(size, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (size, 16, 16, channels), dtype=np.uint8)


def write_csvlogger_file(path, epochs):
    """A history file exactly as keras.callbacks.CSVLogger writes one (excel dialect)."""
    keys = sorted(epochs[0])
    if not any(k.startswith("val_") for k in keys):
        keys += [f"val_{k}" for k in keys]  # CSVLogger adds NA val_ columns
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch"] + keys, dialect=csv.excel)
        writer.writeheader()
        for epoch, logs in enumerate(epochs):
            writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in keys}})
    return path


def linked_files(report_md):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_md.read_text())


CLASSES4 = ["airplane", "cat", "dog", "ship"]


def test_report_numbers_equal_sklearn(tmp_path):
    y_true, y_prob = make_predictions(4, 400)
    y_pred = y_prob.argmax(axis=1)
    result = write_report(tmp_path, y_true, y_prob, CLASSES4, extra={"model": "tiny"})

    assert result["size"] == 400
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0)
        assert result[f"precision_{average}"] == pytest.approx(p)
        assert result[f"recall_{average}"] == pytest.approx(r)
        assert result[f"f1_{average}"] == pytest.approx(f)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(result["accuracy"])
    assert saved["f1_macro"] == pytest.approx(result["f1_macro"])
    assert saved["model"] == "tiny" and saved["split"] == "test"
    assert Path(result["report_path"]) == tmp_path / "report.md"
    report_json = json.loads((tmp_path / "classification_report.json").read_text())
    assert report_json["accuracy"] == pytest.approx(result["accuracy"])
    assert set(CLASSES4) <= set(report_json)


def test_confusion_matrix_sums_to_size_and_matches_sklearn(tmp_path):
    y_true, y_prob = make_predictions(4, 257, seed=3)
    result = write_report(tmp_path, y_true, y_prob, CLASSES4)
    with open(tmp_path / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == CLASSES4
    assert [r[0] for r in rows[1:]] == CLASSES4
    cm = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert cm.sum() == 257
    np.testing.assert_array_equal(cm, confusion_matrix(y_true, y_prob.argmax(axis=1)))
    # the returned dict carries the matrix (e.g. for confusion_matrix_image in TensorBoard)
    np.testing.assert_array_equal(result["confusion"], cm)
    assert result["class_names"] == CLASSES4
    assert figures.confusion_matrix_image(result["confusion"], result["class_names"]).ndim == 3


def test_per_class_text_and_best_worst():
    # cat: 934 of 1000 right; dog: 50 of 100 right; bird: absent from the split
    y_true = np.array([0] * 1000 + [1] * 100)
    y_pred = y_true.copy()
    y_pred[:66] = 1
    y_pred[1000:1050] = 0
    summary = classification_summary(y_true, y_pred, ["cat", "dog", "bird"])
    by_class = {row["class"]: row for row in summary["per_class"]}
    assert by_class["cat"]["text"] == "93.40% (934/1000)"
    assert by_class["dog"]["text"] == "50.00% (50/100)"
    assert (by_class["cat"]["correct"], by_class["cat"]["total"]) == (934, 1000)
    assert by_class["bird"]["total"] == 0 and by_class["bird"]["accuracy"] is None
    assert summary["best_class"] == "cat"
    assert summary["worst_class"] == "dog"  # the empty class is ignored
    assert np.sum(summary["confusion"]) == 1100
    assert summary["accuracy"] == pytest.approx(984 / 1100)


def test_report_md_names_per_class_text_best_and_worst(tmp_path):
    y_true = np.array([0] * 1000 + [1] * 100)
    y_prob = np.zeros((1100, 2))
    y_prob[np.arange(1100), y_true] = 0.9
    y_prob[np.arange(1100), 1 - y_true] = 0.1
    y_prob[:66] = y_prob[:66, ::-1]  # 66 cats called dogs
    y_prob[1000:1050] = y_prob[1000:1050, ::-1]  # 50 dogs called cats
    result = write_report(tmp_path, y_true, y_prob, ["cat", "dog"], title="binary run")
    text = (tmp_path / "report.md").read_text()
    assert "# binary run" in text
    assert "| cat | 93.40% (934/1000) |" in text
    assert "| dog | 50.00% (50/100) |" in text
    assert "best class: **cat**" in text and "worst class: **dog**" in text
    assert "```" in text and "macro avg" in text
    assert (result["best_class"], result["worst_class"]) == ("cat", "dog")
    md_lines = (tmp_path / "per_class_accuracy.md").read_text().splitlines()
    assert "| cat | 93.40% (934/1000) |" in md_lines


def test_every_linked_image_exists(tmp_path):
    y_true, y_prob = make_predictions(4, 120, seed=1)
    history = write_csvlogger_file(tmp_path / "history.csv", [
        {"accuracy": 0.5 + 0.1 * e, "loss": 1.0 - 0.2 * e, "val_accuracy": 0.45 + 0.1 * e,
         "val_loss": 1.1 - 0.2 * e, "learning_rate": 1e-3 / (e + 1)} for e in range(4)])
    out = tmp_path / "report"
    write_report(out, y_true, y_prob, CLASSES4, images=make_images(120),
                 history_csv=history, split="val")
    links = linked_files(out / "report.md")
    assert links, "report.md links no images"
    for link in links:
        assert not Path(link).is_absolute()
        assert (out / link).is_file(), link
    expected = {"confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "per_class_accuracy.png", "reliability.png",
                "samples.png", "misclassified.png", "curves_loss.png", "curves_accuracy.png",
                "curves_lr.png"}
    assert set(links) == expected == {p.name for p in out.glob("*.png")}
    for name in ("classification_report.txt", "classification_report.json",
                 "confusion_matrix.csv", "per_class_accuracy.csv", "per_class_accuracy.md",
                 "predictions.csv", "metrics.json"):
        assert (out / name).is_file(), name
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "file", "true", "pred", "confidence", "loss"] and len(rows) == 120
    assert "split: **val**" in (out / "report.md").read_text()


def test_missing_history_and_no_images_link_only_written_files(tmp_path):
    y_true, y_prob = make_predictions(3, 60)
    write_report(tmp_path, y_true, y_prob, ["a", "b", "c"], history_csv=tmp_path / "nope.csv")
    links = linked_files(tmp_path / "report.md")
    assert set(links) == {"confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "per_class_accuracy.png",
                          "reliability.png"}


def test_misclassified_gallery_without_mistakes(tmp_path):
    images = make_images(10, channels=1)
    y = np.arange(10) % 3
    path = figures.plot_misclassified(images, y, y, ["a", "b", "c"], tmp_path / "mis.png",
                                      y_prob=np.eye(3)[y])
    assert Path(path).is_file() and imread(path).ndim == 3
    # and through the report: a perfect model still gets a (message) gallery that is linked
    out = tmp_path / "perfect"
    result = write_report(out, y, np.eye(3)[y], ["a", "b", "c"], images=images)
    assert result["accuracy"] == 1.0
    assert "misclassified.png" in linked_files(out / "report.md")
    assert (out / "misclassified.png").is_file()


def test_misclassified_most_confident_first():
    y_true = np.array([0, 1, 2, 0, 1])
    y_pred = np.array([1, 1, 0, 2, 0])
    y_prob = np.full((5, 3), 0.1)
    y_prob[[0, 2, 3, 4], y_pred[[0, 2, 3, 4]]] = [0.5, 0.9, 0.6, 0.7]
    assert misclassified_indices(y_true, y_pred).tolist() == [0, 2, 3, 4]
    assert misclassified_indices(y_true, y_pred, y_prob).tolist() == [2, 4, 3, 0]


def test_prediction_grid_gray_and_rgb(tmp_path):
    y_true = np.array([0, 1, 1, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 0])
    for channels in (1, 3):
        path = figures.plot_prediction_grid(make_images(5, channels), y_true, y_pred,
                                            ["neg", "pos"], tmp_path / f"grid{channels}.png")
        assert imread(path).shape[-1] in (3, 4)


def test_prediction_grid_shows_every_class_of_a_class_ordered_split(tmp_path, monkeypatch):
    """A folder's test split is in class order: the grid draws across the classes, not the
    first 36 images (which on Dogs vs Cats were all cats)."""
    shown = []
    monkeypatch.setattr(figures, "image_grid", lambda images, titles, colors, path, title: shown.extend(titles) or path)
    y_true = np.array([0] * 50 + [1] * 50 + [2] * 3)
    figures.plot_prediction_grid(make_images(103, 3), y_true, y_true, ["cat", "dog", "fox"], tmp_path / "g.png")
    assert len(shown) == 36
    assert set(Counter(shown)) == {"cat (cat)", "dog (dog)", "fox (fox)"}


def test_history_plots_from_csvlogger_file(tmp_path):
    history = write_csvlogger_file(tmp_path / "h.csv", [
        {"accuracy": 0.4 + 0.1 * e, "loss": 2.0 / (e + 1), "val_accuracy": 0.35 + 0.1 * e,
         "val_loss": 2.2 / (e + 1), "learning_rate": 0.01 * 0.5 ** e,
         "test_accuracy": 0.8 if e == 4 else "NA"} for e in range(5)])
    assert open(history).readline().strip() == (
        "epoch,accuracy,learning_rate,loss,test_accuracy,val_accuracy,val_loss")
    paths = figures.plot_history(history, tmp_path / "curves")
    assert sorted(Path(p).name for p in paths) == [
        "curves_accuracy.png", "curves_loss.png", "curves_lr.png"]
    assert all(Path(p).is_file() for p in paths)


def test_history_without_validation_or_lr(tmp_path):
    # no validation data: CSVLogger writes val_loss = NA; no accuracy, no lr columns
    history = write_csvlogger_file(tmp_path / "h.csv", [{"loss": 1.0 / (e + 1)} for e in range(3)])
    assert "val_loss" in open(history).readline()
    paths = figures.plot_history(history, tmp_path)
    assert [Path(p).name for p in paths] == ["curves_loss.png"]


def test_roc_auc_equals_sklearn_one_vs_rest():
    y_true, y_prob = make_predictions(5, 300, accuracy=0.5, seed=7)
    names = list("abcde")
    roc = roc_curves(y_true, y_prob, names)
    for i, name in enumerate(names):
        assert roc["classes"][name]["auc"] == pytest.approx(
            roc_auc_score(y_true == i, y_prob[:, i]))
    assert roc["macro_auc"] == pytest.approx(
        roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro"))


def test_roc_binary_and_absent_class():
    y_true, y_prob = make_predictions(2, 100, seed=2)
    roc = roc_curves(y_true, y_prob, ["neg", "pos"])
    assert roc["macro_auc"] == pytest.approx(roc_auc_score(y_true, y_prob[:, 1]))
    # a sigmoid column is accepted for 2 classes
    assert roc_curves(y_true, y_prob[:, 1:], ["neg", "pos"])["macro_auc"] == roc["macro_auc"]
    y3 = np.array([0, 1, 0, 1, 0, 1])
    roc3 = roc_curves(y3, np.random.default_rng(0).dirichlet(np.ones(3), 6), ["a", "b", "c"])
    assert set(roc3["classes"]) == {"a", "b"} and roc3["macro_auc"] is None


def test_many_classes_report(tmp_path):
    names = [f"class_{i:03d}" for i in range(100)]
    y_true, y_prob = make_predictions(100, 1000, seed=5)
    result = write_report(tmp_path, y_true, y_prob, names)
    assert len(result["per_class_accuracy"]) == 100
    assert result["macro_auc"] == pytest.approx(
        roc_auc_score(y_true, y_prob, multi_class="ovr"))
    for link in linked_files(tmp_path / "report.md"):
        assert (tmp_path / link).is_file()


def test_confusion_matrix_image_is_rgb_uint8():
    image = figures.confusion_matrix_image([[5, 1], [2, 7]], ["neg", "pos"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_labels_out_of_range_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="labels must be in"):
        write_report(tmp_path, [0, 3], np.eye(2), ["a", "b"])


def test_evaluation_does_not_import_keras_or_tensorflow():
    code = ("import sys, kerasclf.evaluation.report, kerasclf.evaluation.figures; "
            "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
