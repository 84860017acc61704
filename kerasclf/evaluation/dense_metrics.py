"""Metrics of the multi-label and segmentation tasks, from sklearn and one confusion matrix.

Multi-label (y_true: multi-hot (N, C); y_prob: (N, C) sigmoid outputs): a class is
predicted when its probability is >= `threshold`. Per class: accuracy (of the yes/no
decision over all images), precision, recall, F1, IoU (Jaccard) and average precision;
each averaged over classes (macro), AP's mean is mAP (classes with no positive image have
no AP and are left out of mAP).

Segmentation (y_true, y_pred: class-index masks; 255 in y_true = void, left out): one
C x C confusion matrix of the valid pixels gives per-class pixel accuracy (the share of the
class's pixels labelled right, i.e. its recall: the FCN paper's "class accuracy"),
precision, recall, F1 and IoU = TP / (TP + FP + FN); mean IoU over the classes that occur
(in truth or prediction); frequency-weighted IoU (each class's IoU weighted by its share of
the true pixels); overall pixel accuracy.
"""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    jaccard_score,
    precision_score,
    recall_score,
)

IGNORE = 255


def _nan_to_none(values):
    return [None if v is None or np.isnan(v) else float(v) for v in values]


def multilabel_metrics(y_true, y_prob, class_names, threshold=0.5):
    y_true = np.asarray(y_true).astype(np.int32)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    y_pred = (y_prob >= threshold).astype(np.int32)
    kw = {"average": None, "zero_division": 0}
    per_class = []
    precision = precision_score(y_true, y_pred, **kw)
    recall = recall_score(y_true, y_pred, **kw)
    f1 = f1_score(y_true, y_pred, **kw)
    jaccard = jaccard_score(y_true, y_pred, **kw)
    ap = []
    for c, name in enumerate(class_names):
        positives = int(y_true[:, c].sum())
        ap.append(float(average_precision_score(y_true[:, c], y_prob[:, c])) if positives else None)
        per_class.append({
            "class": name, "support": positives, "predicted": int(y_pred[:, c].sum()),
            "accuracy": float(accuracy_score(y_true[:, c], y_pred[:, c])),
            "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
            "iou": float(jaccard[c]), "ap": ap[-1],
        })
    scored = [v for v in ap if v is not None]
    return {
        "task": "multilabel",
        "threshold": float(threshold),
        "size": len(y_true),
        "per_class": per_class,
        "mAP": float(np.mean(scored)) if scored else None,
        "accuracy_macro": float(np.mean([row["accuracy"] for row in per_class])),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "iou_macro": float(np.mean(jaccard)),
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),  # every label of the image right
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "empty_predictions": int((y_pred.sum(1) == 0).sum()),  # images with no class above the threshold
    }


def confusion_counts(y_true, y_pred, num_classes, ignore=IGNORE):
    """C x C counts (rows: true class, columns: predicted) of the pixels whose truth is not `ignore`."""
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    y_pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    valid = y_true != ignore
    index = y_true[valid] * num_classes + y_pred[valid]
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(cm, class_names):
    """Everything the segmentation report shows, from the confusion matrix of the valid pixels."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    true_count, pred_count = cm.sum(1), cm.sum(0)
    union = true_count + pred_count - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(true_count > 0, tp / true_count, np.nan)
        precision = np.where(pred_count > 0, tp / pred_count, np.nan)
        iou = np.where(union > 0, tp / union, np.nan)
        f1 = np.where(true_count + pred_count > 0, 2 * tp / (true_count + pred_count), np.nan)
    total = cm.sum()
    freq = true_count / total if total else np.zeros_like(true_count)
    per_class = [
        {"class": name, "pixels": int(true_count[c]), "accuracy": v[0], "precision": v[1], "recall": v[0],
         "f1": v[2], "iou": v[3]}
        for c, (name, v) in enumerate(zip(class_names, zip(*[_nan_to_none(a) for a in (recall, precision, f1, iou)])))
    ]
    present = ~np.isnan(iou)
    return {
        "task": "segmentation",
        "pixels": int(total),
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "mean_accuracy": float(np.nanmean(recall)) if (true_count > 0).any() else None,
        "mean_iou": float(iou[present].mean()) if present.any() else None,
        "fw_iou": float((freq[present] * iou[present]).sum()) if present.any() else None,
        "per_class": per_class,
        "confusion": cm.astype(np.int64).tolist(),
        "class_names": list(class_names),
    }
