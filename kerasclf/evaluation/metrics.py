"""Classification metrics as plain dicts/lists (JSON-ready); scikit-learn does the work."""

import numpy as np
from sklearn.metrics import (
    auc,
    classification_report,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)


def as_labels(y, n_classes):
    """Integer class indices as a 1-D array, checked to lie in [0, n_classes)."""
    y = np.asarray(y).reshape(-1).astype(np.int64)
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        # sklearn would silently drop such rows (labels=range(n)), so the counts would not add up
        raise ValueError(
            f"labels must be in [0, {n_classes}); got {sorted(set(y[bad].tolist()))[:5]}"
        )
    return y


def as_probs(y_prob, n_classes):
    """Scores as an (N, n_classes) float array; a single sigmoid column becomes [1-p, p]."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if n_classes == 2 and (y_prob.ndim == 1 or y_prob.shape[-1] == 1):
        p = y_prob.reshape(-1)
        y_prob = np.stack([1.0 - p, p], axis=1)
    if y_prob.ndim != 2 or y_prob.shape[1] != n_classes:
        raise ValueError(
            f"y_prob must have shape (N, {n_classes}) for {n_classes} classes; "
            f"got {y_prob.shape}"
        )
    return y_prob


def accuracy_text(correct, total):
    """'93.40% (934/1000)'; 'n/a (0/0)' for a class with no samples."""
    if total == 0:
        return "n/a (0/0)"
    return f"{100.0 * correct / total:.2f}% ({correct}/{total})"


def per_class_accuracy(cm, class_names):
    """One dict per class: class, correct, total, accuracy (None when total is 0), text."""
    cm = np.asarray(cm)
    rows = []
    for i, name in enumerate(class_names):
        correct, total = int(cm[i, i]), int(cm[i].sum())
        rows.append({
            "class": str(name),
            "correct": correct,
            "total": total,
            "accuracy": correct / total if total else None,
            "text": accuracy_text(correct, total),
        })
    return rows


def best_and_worst(per_class):
    """Names of the most and least accurate classes, ignoring empty ones (ties: first)."""
    scored = [row for row in per_class if row["total"] > 0]
    if not scored:
        return None, None
    best = max(scored, key=lambda row: row["accuracy"])
    worst = min(scored, key=lambda row: row["accuracy"])
    return best["class"], worst["class"]


def classification_summary(y_true, y_pred, class_names):
    """Accuracy, sklearn report (dict and text), confusion matrix and per-class accuracy."""
    class_names = [str(c) for c in class_names]
    n = len(class_names)
    y_true, y_pred = as_labels(y_true, n), as_labels(y_pred, n)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    # labels=range(n): every class gets a row/column, even one absent from this split
    kwargs = dict(labels=list(range(n)), target_names=class_names, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    per_class = per_class_accuracy(cm, class_names)
    best, worst = best_and_worst(per_class)
    size = int(len(y_true))
    return {
        "accuracy": float(np.trace(cm) / size) if size else 0.0,
        "size": size,
        "report": to_jsonable(classification_report(y_true, y_pred, output_dict=True, **kwargs)),
        "report_text": classification_report(y_true, y_pred, digits=4, **kwargs),
        "confusion": cm.astype(int).tolist(),
        "per_class": per_class,
        "best_class": best,
        "worst_class": worst,
    }


def misclassified_indices(y_true, y_pred, y_prob=None):
    """Indices where y_pred != y_true; most confident mistakes first when y_prob is given."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    if y_prob is None or wrong.size == 0:
        return wrong
    confidence = np.asarray(y_prob)[wrong, y_pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")]


def most_confused_pairs(cm, class_names, top=10):
    """[(true, predicted, count, share of the true class)] of the largest off-diagonal cells,
    most first (fastai's most_confused); cells of 0 are left out."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    totals = cm.sum(axis=1)
    pairs = []
    for flat in order:
        t, p = divmod(int(flat), cm.shape[1])
        if off[t, p] <= 0:
            break
        pairs.append((class_names[t], class_names[p], int(off[t, p]), float(off[t, p] / totals[t])))
    return pairs


def calibration(y_true, y_prob, bins=10):
    """Reliability of the top-class confidence: {"ece", "bins": [{"low", "high", "count",
    "confidence", "accuracy"}]} with equal-width confidence bins; ECE is the count-weighted
    mean |accuracy - confidence| over the bins (Guo et al., 2017)."""
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        conf = float(confidence[mask].mean()) if count else None
        acc = float(correct[mask].mean()) if count else None
        if count:
            ece += count / len(y_true) * abs(acc - conf)
        out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                    "confidence": conf, "accuracy": acc})
    return {"ece": float(ece) if len(y_true) else None, "bins": out}


def accuracy_step_points(size):
    """How far one image moves the accuracy of a split of `size` images, in percentage points."""
    return 100.0 / size if size else None


def sample_across_classes(y_true, count, seed=0):
    """Indices of `count` samples drawn at random (seeded) in turns across the classes present:
    every class appears once there are at least as many cells as classes, and no class gets
    more than one image above another's (unless it runs out). Split order (often sorted by
    class) never decides what is shown."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(y_true == c))) for c in np.unique(y_true)]
    rng.shuffle(pools)  # which classes get the extra image when count is not a multiple
    chosen = []
    while len(chosen) < min(count, len(y_true)):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    return np.asarray(chosen, dtype=np.int64)


def roc_curves(y_true, y_prob, class_names):
    """One-vs-rest ROC (fpr, tpr, auc) per class present in y_true, plus macro AUC.

    Returns {"classes": {name: {"fpr": [...], "tpr": [...], "auc": float}},
    "macro_auc": float or None}; macro_auc is None when roc_auc_score cannot be computed
    (a class missing from y_true, or multiclass scores that are not probabilities).
    """
    class_names = [str(c) for c in class_names]
    n = len(class_names)
    y_true, y_prob = as_labels(y_true, n), as_probs(y_prob, n)
    classes = {}
    for i, name in enumerate(class_names):
        positives = y_true == i
        if not positives.any() or positives.all():
            continue  # ROC is undefined without both positives and negatives
        fpr, tpr, _ = roc_curve(positives, y_prob[:, i])
        classes[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(auc(fpr, tpr))}
    return {"classes": classes, "macro_auc": macro_auc(y_true, y_prob)}


def macro_auc(y_true, y_prob):
    """sklearn's macro one-vs-rest ROC AUC, or None where it is undefined."""
    n = y_prob.shape[1]
    if len(np.unique(y_true)) < n:
        return None  # a class without positives has no ROC; sklearn would warn and give NaN
    try:
        if n == 2:
            value = roc_auc_score(y_true, y_prob[:, 1])
        else:
            value = roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro",
                                  labels=list(range(n)))
    except ValueError:  # e.g. multiclass scores that do not sum to 1 (logits)
        return None
    return float(value) if np.isfinite(value) else None


def to_jsonable(value):
    """Numpy scalars/arrays inside dicts/lists -> plain Python (NaN -> None) for json.dump."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # strict JSON has no NaN/Infinity
    return value
