"""Evaluation figures: each function renders one PNG with the Agg canvas (kerasclf.plotting)
and returns its path."""

import math
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay, average_precision_score, precision_recall_curve

from kerasclf.data.sources.voc import voc_palette
from kerasclf.evaluation.metrics import misclassified_indices, sample_across_classes
from kerasclf.plotting import history_epochs, new_figure, read_history, save_figure, spans_decades

MAX_ANNOTATED_CLASSES = 20  # above this, cell values are unreadable: colour only
MAX_LEGEND_CLASSES = 20
RIGHT, WRONG = "tab:green", "tab:red"


def _message_figure(path, message, title=None):
    """A small figure that only says `message` (so a linked PNG always exists)."""
    fig = new_figure(5, 2.5)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, transform=ax.transAxes)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# --- confusion matrix -------------------------------------------------------------------

def _normalize_rows(cm):
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    # an empty class (no true samples) gets a row of zeros rather than NaN
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def _draw_confusion(fig, cm, class_names, normalize, title=None):
    n = len(class_names)
    values = _normalize_rows(cm) if normalize else np.asarray(cm).astype(np.int64)
    side = fig.get_figheight()
    # tick labels sized to the room each class gets along the axis (~85% of the figure)
    label_size = max(4.0, min(10.0, 0.6 * 72 * 0.85 * side / max(n, 1)))
    ax = fig.add_subplot()
    display = ConfusionMatrixDisplay(values, display_labels=[str(c) for c in class_names])
    display.plot(
        ax=ax,
        colorbar=False,  # sklearn's colour bar spans the figure's height; the matrix is square: below
        cmap="Blues",
        include_values=n <= MAX_ANNOTATED_CLASSES,
        values_format=".2f" if normalize else "d",
        xticks_rotation=45 if n <= MAX_ANNOTATED_CLASSES else 90,
        im_kw={"vmin": 0.0, "vmax": 1.0} if normalize else None,
        text_kw={"fontsize": max(5.0, min(10.0, 160.0 / max(n, 1)))},
    )
    for label in ax.get_xticklabels():
        label.set_fontsize(label_size)
        if n <= MAX_ANNOTATED_CLASSES:
            label.set_horizontalalignment("right")  # rotated labels end under their column
    for label in ax.get_yticklabels():
        label.set_fontsize(label_size)
    # the colour bar beside the matrix, exactly as tall (the axes box is the image: aspect "equal")
    cax = ax.inset_axes([1.03, 0.0, 0.035, 1.0])
    fig.colorbar(display.im_, cax=cax)
    engine = fig.get_layout_engine()
    if engine is not None:  # constrained layout leaves inset axes out: room for the bar and its labels
        # (and a strip on the left: the "True label" title of the rows was cut at the edge)
        engine.set(rect=(0.3 / fig.get_figwidth(), 0.0, 1.0 - 1.2 / fig.get_figwidth(), 1.0))
    kind = "row-normalised" if normalize else "counts"
    ax.set_title(f"{title} — confusion matrix ({kind})" if title else f"Confusion matrix ({kind})")
    return ax


def _confusion_size(n):
    # ~0.17 inch per class keeps 100 tick labels legible without a huge, slow PNG
    return min(22.0, max(5.5, 0.17 * n + 4.0))


def plot_confusion_matrix(cm, class_names, path, normalize=False, title=None):
    """Confusion matrix PNG: counts, or rows normalised to recall when `normalize`."""
    side = _confusion_size(len(class_names))
    fig = new_figure(side + 1.0, side)
    _draw_confusion(fig, cm, class_names, normalize, title)
    return save_figure(fig, path)


def tensorboard_confusion_size(n):
    """Inches (at 100 dpi) of a confusion matrix image for a TensorBoard card: small enough that
    the card shows it near full size (the card scales a wide image down, and its text with it),
    growing with the class count so that 100 labels still have room."""
    return min(14.0, max(4.5, 3.0 + 0.12 * n))


def confusion_matrix_image(cm, class_names, title=None):
    """The count confusion matrix rendered as a uint8 (H, W, 3) RGB array (e.g. TensorBoard)."""
    side = tensorboard_confusion_size(len(class_names))
    fig = new_figure(side + 1.0, side)
    _draw_confusion(fig, cm, class_names, normalize=False, title=title)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def plot_per_class_accuracy(per_class, path):
    """Horizontal bars of per-class accuracy, worst class at the top (sorted), with the split's
    mean as a line; returns the path. per_class: classification_summary()["per_class"]."""
    rows = sorted((r for r in per_class if r["accuracy"] is not None), key=lambda r: (r["accuracy"], r["class"]))
    n = len(rows)
    fig = new_figure(7.0, min(40.0, max(2.5, 0.16 * n + 1.2)))
    ax = fig.add_subplot()
    positions = np.arange(n)
    ax.barh(positions, [r["accuracy"] for r in rows], color="tab:blue", height=0.75)
    ax.set_yticks(positions, [r["class"] for r in rows], fontsize=max(5.0, min(9.0, 500.0 / max(n, 1))))
    ax.set_ylim(n - 0.5, -0.5)  # worst first, at the top; no empty band above or below
    ax.set_xlim(0, 1)
    if n:
        mean = float(np.mean([r["accuracy"] for r in rows]))
        ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1, label=f"mean of classes {mean:.1%}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("accuracy (recall of the class)")
    ax.set_title(f"Per-class accuracy, sorted ({n} classes)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def plot_reliability(calib, path, title="Reliability diagram"):
    """Accuracy against confidence per confidence bin (bars), the diagonal of perfect
    calibration, and each bin's image count; ECE in the title. calib: metrics.calibration()."""
    bins = calib["bins"]
    fig = new_figure(5.6, 5.2)
    ax = fig.add_subplot()
    used = [b for b in bins if b["count"]]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    ax.bar([b["low"] for b in used], [b["accuracy"] for b in used], width=width, align="edge",
           color="tab:blue", edgecolor="white", label="accuracy in the bin")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.scatter([b["confidence"] for b in used], [b["confidence"] for b in used], color="tab:red", s=14, zorder=3,
               label="mean confidence in the bin")
    for b in used:
        ax.annotate(str(b["count"]), (b["low"] + width / 2, b["accuracy"]), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ece = calib.get("ece")
    ax.set_title(f"{title}: ECE {ece:.3f}" if ece is not None else title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# --- image galleries --------------------------------------------------------------------

def to_display(image):
    """uint8 HxW or HxWx3 for imshow; floats in [0, 1] are scaled, 1 channel squeezed."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        if image.size and image.max() <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def image_grid(images, titles, colors, path, suptitle):
    """Square-ish grid of images, each with its own coloured title."""
    count = len(images)
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    height = 1.85 * rows + 0.9
    # fixed margins (room for the suptitle and two-line titles): constrained layout
    # costs seconds on a 6x6 grid
    # wide enough for the suptitle even when only a few images are shown
    fig = new_figure(max(1.7 * cols, 0.085 * len(suptitle), 4.0), height, layout=None)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.95 / height,
                        wspace=0.1, hspace=0.45)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, text, color in zip(axes, images, titles, colors):
        image = to_display(image)
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(text, color=color, fontsize=7.5)
    fig.suptitle(suptitle, fontsize=11, y=1 - 0.12 / height, va="top")
    return save_figure(fig, path)


def _check_images(images, y_true, y_pred):
    if len(images) != len(y_true) or len(y_true) != len(y_pred):
        raise ValueError(
            f"images ({len(images)}), y_true ({len(y_true)}) and y_pred ({len(y_pred)}) "
            "must have the same length"
        )


def plot_prediction_grid(images, y_true, y_pred, class_names, path, max_images=36,
                         title="Predictions: pred (true)", seed=0):
    """Grid of `max_images` images drawn at random across the true classes (seeded; every
    class present when there are enough cells: sample_across_classes), titled "pred (true)":
    green right, red wrong."""
    _check_images(images, y_true, y_pred)
    if len(images) == 0:
        return _message_figure(path, "no images", title)
    idx = sample_across_classes(y_true, max_images, seed)
    title = f"{title}: {len(idx)} of {len(images)}, drawn across the classes (seed {seed})"
    names = [str(c) for c in class_names]
    titles = [f"{names[y_pred[i]]} ({names[y_true[i]]})" for i in idx]
    colors = [RIGHT if y_pred[i] == y_true[i] else WRONG for i in idx]
    # only the shown images are read (a split of files decodes just these): galleries need no memory budget
    return image_grid([images[i] for i in idx], titles, colors, path, title)


def plot_misclassified(images, y_true, y_pred, class_names, path, y_prob=None, max_images=36, paths=None):
    """Gallery of mistakes titled "pred (true)"; most confident mistakes first given y_prob;
    each titled with its image file's name given `paths`."""
    _check_images(images, y_true, y_pred)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = misclassified_indices(y_true, y_pred, y_prob)
    if wrong.size == 0:
        return _message_figure(path, "no misclassified images", "Misclassified images")
    names = [str(c) for c in class_names]
    shown = wrong[:max_images]
    titles = []
    for i in shown:
        text = f"{names[y_pred[i]]} ({names[y_true[i]]})"
        text = text if y_prob is None else f"{text}\n{y_prob[i][y_pred[i]]:.1%}"
        titles.append(text if paths is None else f"{text}\n{_short_name(paths[i])}")
    suptitle = f"Misclassified: pred (true) — {len(shown)} of {len(wrong)}"
    if y_prob is not None:
        suptitle += ", most confident first"
    return image_grid([images[i] for i in shown], titles, [WRONG] * len(shown), path, suptitle)


def _short_name(path, width=22):
    """A file's name, shortened in the middle to fit under a thumbnail."""
    name = Path(str(path)).name
    return name if len(name) <= width else f"{name[: width // 2 - 1]}…{name[-(width // 2):]}"


# --- training history -------------------------------------------------------------------

def _curve_plot(columns, epochs, series, ylabel, path, log_y=False, best_epoch=None):
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1.2, label=f"best epoch ({best_epoch})")
    for label, key in series:
        y = columns[key]
        ok = np.isfinite(y)
        # markers keep a single point visible (e.g. test_accuracy logged once at the end)
        ax.plot(epochs[ok], y[ok], marker="o", markersize=3, label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{ylabel} (log scale)" if log_y else ylabel)
    ax.set_title(f"{ylabel} per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_history(history_csv_path, out_dir, best_epoch=None):
    """curves_loss.png / curves_accuracy.png (/ curves_aux_loss.png) / curves_lr.png from a
    history.csv; `best_epoch` (the checkpoint's) is marked on each curve figure."""
    columns = read_history(history_csv_path)
    if not columns:
        return []
    epochs = history_epochs(columns)
    out_dir = Path(out_dir)
    paths = []
    # aux_loss: the triplet/center term of a CE + auxiliary run (losses/composite.py), its own scale
    for metric, aliases in (("loss", ("loss",)), ("accuracy", ("accuracy", "acc")), ("aux_loss", ("aux_loss",))):
        series = []
        for split, prefix in (("train", ""), ("val", "val_"), ("test", "test_")):
            key = next((prefix + a for a in aliases if prefix + a in columns), None)
            # CSVLogger fills val_* with "NA" when there is no validation data: skip those
            if key is not None and np.isfinite(columns[key]).any():
                series.append((split, key))
        if series:
            # a loss that blew up (1e11 after 0.8) would flatten the rest of the curve on a linear axis
            log_y = metric != "accuracy" and spans_decades([columns[key] for _, key in series])
            paths.append(_curve_plot(columns, epochs, series, metric.replace("_", " "), out_dir / f"curves_{metric}.png",
                                     log_y=log_y, best_epoch=best_epoch))
    lr_key = next((k for k in ("learning_rate", "lr") if k in columns), None)
    lr = columns[lr_key][np.isfinite(columns[lr_key])] if lr_key else np.array([])
    if lr.size:
        log_y = spans_decades([lr], ratio=10)
        paths.append(_curve_plot(columns, epochs, [("learning rate", lr_key)], "learning rate",
                                 out_dir / "curves_lr.png", log_y=log_y))
    return paths


# --- ROC --------------------------------------------------------------------------------

def plot_roc(roc_dict, path):
    """One-vs-rest ROC curves from metrics.roc_curves(), AUC per class in the legend."""
    classes = roc_dict.get("classes", {})
    if not classes:
        return _message_figure(path, "ROC unavailable (fewer than two classes present)", "ROC")
    many = len(classes) > MAX_LEGEND_CLASSES
    fig = new_figure(7.5 if not many else 6.5, 6)
    ax = fig.add_subplot()
    for name, curve in classes.items():
        ax.plot(curve["fpr"], curve["tpr"], linewidth=0.7 if many else 1.4,
                alpha=0.5 if many else 1.0, label=f"{name} (AUC={curve['auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    macro = roc_dict.get("macro_auc")
    title = "ROC, one-vs-rest"
    if macro is not None:
        title += f" — macro AUC {macro:.4f}"
    if many:
        # a legend of dozens of entries hides the curves; per-class AUCs are in metrics.json
        title += f"\n({len(classes)} classes; per-class AUC in metrics.json)"
    else:
        ax.legend(fontsize=7 if len(classes) > 10 else 9, loc="lower right")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# --- multi-label and segmentation -------------------------------------------------------

def plot_multilabel_grid(images, y_true, y_prob, class_names, path, threshold=0.5, max_images=36,
                         title="Predictions: pred (true)"):
    """Images titled with the predicted classes (at or above `threshold`) and the true ones;
    "no prediction" when no class reaches the threshold. Green: exactly right."""
    if len(images) == 0:
        return _message_figure(path, "no images", title)
    names = [str(c) for c in class_names]
    idx = np.arange(min(len(images), max_images))
    titles, colors = [], []
    for i in idx:
        pred = np.flatnonzero(np.asarray(y_prob[i]) >= threshold)
        true = np.flatnonzero(np.asarray(y_true[i]))
        shown = ", ".join(names[c] for c in pred) if len(pred) else "no prediction"
        titles.append(f"{shown}\n({', '.join(names[c] for c in true) or 'none'})")
        colors.append(RIGHT if set(pred) == set(true) else WRONG)
    return image_grid([images[i] for i in idx], titles, colors, path, f"{title}, threshold {threshold:g}")


def plot_pr_curves(y_true, y_prob, class_names, path):
    """Precision-recall curve of every class with a positive image, its AP in the legend."""

    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    fig = new_figure(7, 5.5)
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        if y_true[:, c].sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(y_true[:, c], y_prob[:, c])
        ap = average_precision_score(y_true[:, c], y_prob[:, c])
        ax.plot(recall, precision, lw=1.2, label=f"{name} (AP {ap:.2f})" if len(class_names) <= MAX_LEGEND_CLASSES else None)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall per class")
    if len(class_names) <= MAX_LEGEND_CLASSES:
        ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)


def palette_image(mask):
    """A class-index mask (255 = void) in the Pascal VOC colours, uint8 (H, W, 3)."""
    return voc_palette()[np.asarray(mask, dtype=np.uint8)]


def plot_segmentation_samples(images, y_true, y_pred, class_names, path, max_images=8):
    """Rows of image | true mask | predicted mask (VOC palette), with a colour legend."""

    count = min(len(images), max_images)
    if count == 0:
        return _message_figure(path, "no images", "Segmentation samples")
    fig = new_figure(7.5, 2.3 * count + 0.8)
    axes = fig.subplots(count, 3, squeeze=False)
    for row in range(count):
        right = np.asarray(y_true[row]) != 255
        acc = (np.asarray(y_pred[row])[right] == np.asarray(y_true[row])[right]).mean() if right.any() else float("nan")
        for col, (image, text) in enumerate(((images[row], "image"), (palette_image(y_true[row]), "true"),
                                             (palette_image(y_pred[row]), f"predicted ({acc:.0%} of pixels)"))):
            axes[row, col].imshow(to_display(image), interpolation="nearest")
            axes[row, col].set_title(text, fontsize=8)
            axes[row, col].axis("off")
    colours = palette_image(np.arange(len(class_names))[None])[0] / 255.0
    handles = [Patch(color=colours[c], label=str(n)) for c, n in enumerate(class_names)]
    handles.append(Patch(color=np.array([224, 224, 192]) / 255.0, label="void (255)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)), fontsize=7)
    return save_figure(fig, path)
