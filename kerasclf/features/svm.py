"""`kerasclf svm`: one-vs-rest SVMs (linear and RBF) on `kerasclf features` embeddings,
with the evaluation report set (classification report, confusion matrices, per-class
accuracy, ROC with AUC) for the test split (the validation split when there is no test).

C is chosen on the validation split when the file has one (fit on train, score on val,
refit on train with the best C), else by stratified k-fold cross-validation on train; every
C tried and its score are reported. Features are standardised (mean 0, variance 1 from the
training split) inside the pipeline. The report's class scores are the one-vs-rest decision
values passed through a softmax: argmax is the SVM's prediction, and each class's ROC ranks
images by how far they sit on that class's side relative to the other classes.
"""

import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from kerasclf.errors import DataError
from kerasclf.evaluation.report import write_report
from kerasclf.features.extract import load_features
from kerasclf.runs.atomic import write_text

KERNELS = ("linear", "rbf")
# Linear: high-dimensional ImageNet features want small C (on 1,280 EfficientNet features of CIFAR
# images C=0.001 beat 0.01, and C>=0.1 did not converge in minutes), so the grid starts low.
C_GRID = {"linear": (0.0001, 0.001, 0.01, 0.1), "rbf": (0.1, 1.0, 10.0, 100.0)}


def make_svm(kernel, C, seed=0):
    """StandardScaler + one-vs-rest SVM: LinearSVC (liblinear) for linear, SVC for RBF."""
    if kernel == "linear":
        base = LinearSVC(C=C, dual="auto", max_iter=2000, random_state=seed)
    elif kernel == "rbf":
        base = SVC(kernel="rbf", C=C, gamma="scale", random_state=seed)
    else:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    return make_pipeline(StandardScaler(), OneVsRestClassifier(base))


def softmax(scores):
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_scores(model, x):
    """(N, classes) softmax of the one-vs-rest decision values; argmax equals model.predict(x).

    With two classes OneVsRestClassifier keeps one estimator and returns one column d:
    class 1 when d > 0, so the scores are softmax([-d, d])."""
    scores = np.asarray(model.decision_function(x), dtype=np.float64)
    if scores.ndim == 1:
        scores = np.stack([-scores, scores], axis=1)
    return softmax(scores)


def subsample(y, limit, seed=0):
    """Indices of a seeded, stratified subsample of at most `limit` rows (all when limit is None)."""
    n = len(y)
    if limit is None or n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    classes, counts = np.unique(y, return_counts=True)
    for c, count in zip(classes, counts):
        rows = np.flatnonzero(y == c)
        take = max(1, round(limit * count / n))
        keep.append(rng.choice(rows, size=min(take, count), replace=False))
    return np.sort(np.concatenate(keep))


def choose_C(kernel, train, val, grid, folds=3, seed=0):
    """(best C, [{"C", "score"}], how): on the validation split when given, else k-fold CV."""
    (x, y) = train
    if val is not None:
        scores = []
        for C in grid:
            model = make_svm(kernel, C, seed).fit(x, y)
            scores.append({"C": C, "score": float((model.predict(val[0]) == val[1]).mean())})
        best = max(scores, key=lambda s: s["score"])["C"]  # ties: the smaller C (listed first)
        return best, scores, "validation split accuracy"
    search = GridSearchCV(
        make_svm(kernel, grid[0], seed), {"onevsrestclassifier__estimator__C": list(grid)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed), scoring="accuracy", refit=False,
    ).fit(x, y)
    scores = [{"C": C, "score": float(s)} for C, s in zip(grid, search.cv_results_["mean_test_score"])]
    return search.best_params_["onevsrestclassifier__estimator__C"], scores, f"{folds}-fold cross-validation accuracy on train"


def run_svm(features_path, out_dir, kernels=KERNELS, max_train=None, folds=3, seed=0, grids=None, echo=print):
    """Fit, choose C, and write <out>/<kernel>/ reports plus <out>/svm.json and svm.md."""
    splits, class_names, meta = load_features(features_path)
    if "train" not in splits:
        raise DataError(f"{features_path} has no train split to fit the SVM on.")
    test_name = "test" if "test" in splits else ("val" if "val" in splits else None)
    if test_name is None:
        raise DataError(
            f"{features_path} has only a train split: the SVM needs held-out images to be scored on. Extract the "
            "features with a val or test split (e.g. --set data.test_fraction=0.2)."
        )
    x, y = splits["train"]
    keep = subsample(y, max_train, seed)
    train = (x[keep], y[keep])
    val = splits.get("val") if test_name == "test" else None
    x_test, y_test = splits[test_name]
    out = Path(out_dir)
    results = {"features": str(features_path), "meta": meta, "train_size": len(keep),
               "train_available": len(y), "test_split": test_name, "test_size": len(y_test),
               "val_size": None if val is None else len(val[1]), "kernels": {}}
    for kernel in kernels:
        grid = (grids or {}).get(kernel) or C_GRID[kernel]
        start = time.perf_counter()
        best, scores, how = choose_C(kernel, train, val, grid, folds, seed)
        model = make_svm(kernel, best, seed).fit(*train)
        probs = class_scores(model, x_test)
        seconds = time.perf_counter() - start
        report = write_report(
            out / kernel, y_test, probs, class_names, split=test_name,
            title=f"One-vs-rest {kernel} SVM on {meta.get('backbone', 'features')} features of {meta.get('data', '?')}",
            extra={"kernel": kernel, "C": best, "C_chosen_by": how, "C_scores": scores, "features": str(features_path),
                   "train_size": len(keep), "seconds": round(seconds, 1)},
        )
        results["kernels"][kernel] = {"C": best, "C_chosen_by": how, "C_scores": scores, "accuracy": report["accuracy"],
                                      "f1_macro": report["f1_macro"], "macro_auc": report["macro_auc"],
                                      "seconds": round(seconds, 1), "report": report["report_path"]}
        echo(f"{kernel} SVM: C={best} ({how}: " + ", ".join(f"C={s['C']} {s['score']:.4f}" for s in scores)
             + f"); {test_name} accuracy {report['accuracy']:.4f} on {len(y_test)} images, {seconds:.1f} s")
    write_text(out / "svm.json", json.dumps(results, indent=2) + "\n")
    write_text(out / "svm.md", "\n".join(_markdown(results)) + "\n")
    return results


def _markdown(results):
    meta = results["meta"]
    lines = [
        "# SVM on features", "",
        f"- features: `{results['features']}` ({meta.get('backbone', '?')}, weights {meta.get('weights', '?')}, "
        f"data {meta.get('data', '?')}, {meta.get('feature_size', '?')} dimensions)",
        f"- train: {results['train_size']} images (of {results['train_available']})"
        + (f"; validation: {results['val_size']}" if results["val_size"] else "")
        + f"; scored on {results['test_split']}: {results['test_size']}", "",
        "| kernel | C | chosen by | accuracy | macro F1 | macro AUC | seconds | report |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kernel, r in results["kernels"].items():
        auc = "n/a" if r["macro_auc"] is None else f"{r['macro_auc']:.4f}"
        lines.append(f"| {kernel} | {r['C']} | {r['C_chosen_by']} | {100 * r['accuracy']:.2f}% | {r['f1_macro']:.4f} "
                     f"| {auc} | {r['seconds']} | [{kernel}/report.md]({kernel}/report.md) |")
    lines += ["", "C tried (score):", ""]
    for kernel, r in results["kernels"].items():
        lines.append(f"- {kernel}: " + ", ".join(f"C={s['C']}: {s['score']:.4f}" for s in r["C_scores"]))
    return lines
