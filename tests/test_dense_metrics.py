"""Multi-label and segmentation metrics against sklearn on the same arrays, and the reports.

The oracle is sklearn's own functions (precision/recall/F1/AP/Jaccard, confusion_matrix)
called directly on the flattened valid pixels, and IoU recomputed here from sklearn's
confusion matrix: never the code under test.
"""

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from kerasclf.evaluation.dense_metrics import confusion_counts, multilabel_metrics, segmentation_metrics

NAMES = ["a", "b", "c", "d"]


def _multilabel_arrays(seed=0, n=60, c=4):
    rng = np.random.default_rng(seed)
    y_true = (rng.random((n, c)) < 0.35).astype(np.float32)
    y_true[:, 3] = 0  # a class with no positive image: no AP, left out of mAP
    y_prob = np.clip(0.6 * y_true + rng.random((n, c)) * 0.6, 0, 1)
    return y_true, y_prob


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_multilabel_metrics_equal_sklearn(threshold):
    y_true, y_prob = _multilabel_arrays()
    m = multilabel_metrics(y_true, y_prob, NAMES, threshold)
    y_pred = (y_prob >= threshold).astype(int)
    for c, row in enumerate(m["per_class"]):
        t, p = y_true[:, c].astype(int), y_pred[:, c]
        assert row["accuracy"] == pytest.approx(accuracy_score(t, p))
        assert row["precision"] == pytest.approx(precision_score(t, p, zero_division=0))
        assert row["recall"] == pytest.approx(recall_score(t, p, zero_division=0))
        assert row["f1"] == pytest.approx(f1_score(t, p, zero_division=0))
        assert row["iou"] == pytest.approx(jaccard_score(t, p, zero_division=0))
        if t.sum():
            assert row["ap"] == pytest.approx(average_precision_score(t, y_prob[:, c]))
        else:
            assert row["ap"] is None
    aps = [average_precision_score(y_true[:, c], y_prob[:, c]) for c in range(3)]
    assert m["mAP"] == pytest.approx(np.mean(aps))
    assert m["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["empty_predictions"] == int((y_pred.sum(1) == 0).sum())


def _segmentation_arrays(seed=0, n=5, size=12, c=4, void=True):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, c, (n, size, size)).astype(np.uint8)
    y_pred = np.where(rng.random((n, size, size)) < 0.7, y_true, rng.integers(0, c, (n, size, size))).astype(np.uint8)
    if void:
        y_true[:, :2, :] = 255  # void bands, as VOC's borders
        y_true[:, :, -1] = 255
        y_pred[:, :2, :] = 3  # predictions under void pixels must not count
    return y_true, y_pred


@pytest.mark.parametrize("void", [False, True])
def test_segmentation_metrics_equal_sklearn_with_and_without_void(void):
    y_true, y_pred = _segmentation_arrays(void=void)
    cm = confusion_counts(y_true, y_pred, 4)
    valid = y_true.reshape(-1) != 255
    t, p = y_true.reshape(-1)[valid], y_pred.reshape(-1)[valid]
    oracle_cm = confusion_matrix(t, p, labels=range(4))
    np.testing.assert_array_equal(cm, oracle_cm)
    m = segmentation_metrics(cm, NAMES)
    labels = list(range(4))
    precision = precision_score(t, p, labels=labels, average=None, zero_division=0)
    recall = recall_score(t, p, labels=labels, average=None, zero_division=0)
    f1 = f1_score(t, p, labels=labels, average=None, zero_division=0)
    jaccard = jaccard_score(t, p, labels=labels, average=None, zero_division=0)
    tp = np.diag(oracle_cm)
    iou_from_cm = tp / (oracle_cm.sum(0) + oracle_cm.sum(1) - tp)
    for c, row in enumerate(m["per_class"]):
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c]) == pytest.approx(row["accuracy"])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["iou"] == pytest.approx(jaccard[c]) == pytest.approx(iou_from_cm[c])
    assert m["mean_iou"] == pytest.approx(jaccard_score(t, p, labels=labels, average="macro"))
    freq = oracle_cm.sum(1) / oracle_cm.sum()
    assert m["fw_iou"] == pytest.approx((freq * iou_from_cm).sum())
    assert m["pixel_accuracy"] == pytest.approx(accuracy_score(t, p))
    assert m["pixels"] == int(valid.sum())


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_mean_iou():
    y_true = np.array([[0, 0, 1, 255]], np.uint8)
    y_pred = np.array([[0, 1, 1, 2]], np.uint8)  # class 2 predicted only on a void pixel: it does not occur
    m = segmentation_metrics(confusion_counts(y_true, y_pred, 3), ["bg", "x", "y"])
    assert m["per_class"][2]["iou"] is None
    assert m["mean_iou"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_multilabel_report_and_no_prediction_in_the_grid(tmp_path, monkeypatch):
    import csv

    from kerasclf.evaluation import figures
    from kerasclf.evaluation.dense_report import label_text, write_multilabel_report

    grids = []
    real_grid = figures.image_grid

    def spy(images, titles, colors, path, suptitle):
        grids.append(titles)
        return real_grid(images, titles, colors, path, suptitle)

    monkeypatch.setattr(figures, "image_grid", spy)

    y_true, y_prob = _multilabel_arrays(n=12)
    y_prob[0] = 0.1  # nothing passes the threshold
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    result = write_multilabel_report(tmp_path, y_true, y_prob, NAMES, images=images, threshold=0.5, title="t")
    assert label_text([], NAMES) == "no prediction"
    text = (tmp_path / "report.md").read_text()
    assert "mAP" in text and "| class | images | accuracy | precision | recall | f1 | iou | ap |" in text
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "pr_curves.png").is_file()
    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1][2] == "no prediction"
    assert grids[0][0].startswith("no prediction\n(")
    expected = ", ".join(NAMES[c] for c in np.flatnonzero(y_prob[1] >= 0.5)) or "no prediction"
    assert grids[0][1].startswith(expected + "\n(")
    assert json.loads((tmp_path / "metrics.json").read_text())["mAP"] == pytest.approx(result["mAP"])


def test_segmentation_report_files(tmp_path):
    from kerasclf.evaluation.dense_report import write_segmentation_report

    y_true, y_pred = _segmentation_arrays(n=3)
    images = np.random.default_rng(0).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    result = write_segmentation_report(tmp_path, y_true, y_pred, NAMES, images=images, title="t")
    text = (tmp_path / "report.md").read_text()
    for part in ("mean IoU", "frequency-weighted IoU", "void pixels left out", "| class | pixels |"):
        assert part in text
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "confusion_matrix.csv").is_file()
    assert result["void_pixels"] == int((y_true == 255).sum())


def test_the_palette_figure_colours_masks_as_voc():
    from kerasclf.evaluation.figures import palette_image

    image = palette_image(np.array([[0, 1, 255]], np.uint8))
    assert image[0].tolist() == [[0, 0, 0], [128, 0, 0], [224, 224, 192]]
