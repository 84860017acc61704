"""`kerasclf zeroshot`: an ImageNet-1k classifier applied to another label set.

Each image's top-1 ImageNet class is mapped through a reviewed table (kerasclf.features.
imagenet) to a target class or "other". Reported: accuracy (an image of class c is right
when the mapped prediction is c; "other" is always wrong), per-class precision (of the images
predicted c, the share that are c) and recall (of the images of class c, the share predicted
c), and the C x (C + 1) confusion matrix whose last column is "other".
"""

import csv
import json
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from kerasclf.config import load_config
from kerasclf.data import build_dataset
from kerasclf.data.provenance import concatenate
from kerasclf.errors import ConfigError, DataError
from kerasclf.evaluation.metrics import accuracy_text
from kerasclf.features.extract import embed_split
from kerasclf.features.imagenet import OTHER, imagenet_names, load_mapping
from kerasclf.models.mobile import imagenet_classifier as offline_classifier
from kerasclf.models.pretrained import weights_source
from kerasclf.plotting import new_figure, save_figure
from kerasclf.runs.atomic import atomic_open, write_text


def zeroshot_metrics(y_true, y_pred, class_names):
    """Metrics of mapped predictions: y_true in 0..C-1, y_pred in 0..C (C = "other")."""
    n = len(class_names)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n + 1)))[:n]  # no image is truly "other"
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n)), zero_division=0)
    per_class = []
    for c, name in enumerate(class_names):
        predicted = int(cm[:, c].sum())
        per_class.append({
            "class": name, "images": int(support[c]), "predicted": predicted,
            "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
            "to_other": int(cm[c, n]),
            "recall_text": accuracy_text(int(cm[c, c]), int(support[c])),
            "precision_text": accuracy_text(int(cm[c, c]), predicted),
        })
    size = len(y_true)
    return {
        "accuracy": float(np.trace(cm[:, :n]) / size) if size else 0.0,
        "size": size,
        "other_share": float(cm[:, n].sum() / size) if size else 0.0,
        "precision_macro": float(np.mean(precision)), "recall_macro": float(np.mean(recall)),
        "labels": [*class_names, OTHER], "confusion": cm.astype(int).tolist(), "per_class": per_class,
    }


# keras.applications classifiers (1000 ImageNet outputs) by name: constructor, preprocessing module, input side.
# Their ImageNet weights are downloaded by Keras (network needed once).
APPLICATIONS = {
    "resnet50": ("ResNet50", "resnet50", 224),
    "vgg16": ("VGG16", "vgg16", 224),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", 224),
}
# Registered backbones whose ImageNet classifier kerasclf builds offline (kerasclf.models.mobile).
OFFLINE = ("efficientnet_lite0", "mobilenet_v2")
MODELS = (*OFFLINE, *APPLICATIONS)


def imagenet_classifier(name, weights="imagenet", image_size=None):
    """uint8 images (any size) -> (N, 1000) ImageNet probabilities, resized in the model to the
    network's input size: (keras.Model, input side)."""
    if name not in MODELS:
        raise ConfigError(f"--model must be one of {', '.join(MODELS)} (ImageNet-1k classifiers); got {name!r}.")
    source = weights_source(weights)
    if name in OFFLINE:
        if source != "imagenet":
            raise ConfigError(f"--model {name} takes its ImageNet weights from the installed package: --weights imagenet.")
        net, side = offline_classifier(name, (224, 224)), 224
        h, w = image_size or (None, None)
        inputs = keras.Input((h, w, 3), dtype="uint8")
        x = keras.layers.Resizing(side, side, interpolation="bilinear")(keras.ops.cast(inputs, "float32"))
        x = keras.ops.cast(keras.ops.clip(keras.ops.round(x), 0, 255), "uint8")  # the network takes uint8 pixels
        return keras.Model(inputs, net(x), name=f"{name}_imagenet"), side
    cls, module, side = APPLICATIONS[name]
    if source not in (None, "imagenet") and not Path(source).is_file():
        raise ConfigError(f"--weights {weights!r} is neither imagenet, none, nor an existing weights file.")
    try:
        net = getattr(keras.applications, cls)(weights=source, include_top=True, classifier_activation="softmax")
    except Exception as exc:  # offline: keras raises a bare Exception("URL fetch failure ...")
        if source != "imagenet":
            raise ConfigError(f"Could not load {weights!r} into {cls} with its ImageNet classifier: {exc}") from None
        raise ConfigError(
            f"{cls}'s ImageNet weights (with the classifier) could not be downloaded ({str(exc).splitlines()[0]}). "
            "Run once with network access (keras caches the file in ~/.keras/models), pass a local copy with "
            f"--weights /path/to/file.h5, or use one of the offline models ({', '.join(OFFLINE)})."
        ) from None
    preprocess = getattr(keras.applications, module).preprocess_input
    h, w = image_size or (None, None)
    inputs = keras.Input((h, w, 3), dtype="uint8")
    x = keras.layers.Resizing(side, side, interpolation="bilinear")(keras.ops.cast(inputs, "float32"))
    model = keras.Model(inputs, net(preprocess(x)), name=f"{name}_imagenet")
    return model, side


def run_zeroshot(out_dir, model_name, data, classes=None, weights="imagenet", overrides=(), data_dir=None,
                 batch_size=64, split="all", echo=print):
    """Classify `data`'s images with the ImageNet classifier, map, and write the report."""
    mapping = load_mapping(classes or default_mapping(data))
    cfg = load_config(None, [f"data.source={data}", "data.val_fraction=0", "data.test_fraction=0", *overrides])
    if data_dir:
        cfg.data.data_dir = data_dir
    dataset = build_dataset(cfg.data, cfg.seed)
    chosen = _split(dataset, split)
    order = _class_order(dataset.info.class_names, mapping)
    y_true = order[np.asarray(chosen.y, np.int64)]
    model, side = imagenet_classifier(model_name, weights, tuple(dataset.info.image_size))
    start = time.perf_counter()
    probs = embed_split(model, chosen, batch_size, verbose=1)
    seconds = time.perf_counter() - start
    top1 = probs.argmax(axis=1)
    y_pred = mapping.target_index()[top1]
    metrics = zeroshot_metrics(y_true, y_pred, mapping.class_names)
    names = imagenet_names()
    metrics.update({"model": model_name, "weights": str(weights), "data": data, "split": split, "mapping": mapping.target,
                    "input_size": side, "seconds": round(seconds, 1), "images_per_second": round(len(y_true) / seconds, 1)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "zeroshot.json", json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics["confusion"], mapping.class_names, metrics["labels"], out / "confusion_matrix.png",
                   f"{model_name} zero-shot on {data}: accuracy {100 * metrics['accuracy']:.2f}%")
    with atomic_open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "path", "true", "imagenet_top1", "imagenet_name", "probability", "mapped"])
        paths = chosen.paths if chosen.paths is not None else [""] * len(y_true)
        for i, (t, k, m) in enumerate(zip(y_true, top1, y_pred)):
            writer.writerow([i, paths[i], mapping.class_names[t], int(k), names[k], f"{probs[i, k]:.6f}", metrics["labels"][m]])
    write_text(out / "zeroshot.md", "\n".join(markdown(metrics, mapping, top1, y_true, names)) + "\n")
    echo(f"zero-shot {model_name} -> {mapping.target}: accuracy {metrics['accuracy']:.4f} on {len(y_true)} images "
         f"({100 * metrics['other_share']:.1f}% mapped to other), {seconds:.1f} s")
    return {**metrics, "report_path": str(out / "zeroshot.md")}


def default_mapping(data):
    for name in ("cifar10", "stl10"):
        if name in str(data).lower().replace("-", ""):
            return name
    raise ConfigError(f"Name the label mapping for {data!r} with --classes (cifar10, stl10 or a YAML file).")


def _split(dataset, split):
    if split == "all":
        return concatenate(dataset)
    chosen = dataset.split(split)
    if chosen is None or not len(chosen):
        raise DataError(f"The data {dataset.info.source!r} has no {split!r} split; use --split all.")
    return chosen


def _class_order(data_classes, mapping):
    """Data label index -> mapping class index, matched by name (case-insensitive)."""
    lookup = {c.lower(): i for i, c in enumerate(mapping.class_names)}
    missing = [c for c in data_classes if c.lower() not in lookup]
    if missing:
        raise DataError(
            f"The data's classes {missing} are not in the {mapping.target} mapping ({', '.join(mapping.class_names)}); "
            "choose the mapping with --classes, or restrict the data with --set data.classes=[...]."
        )
    return np.array([lookup[c.lower()] for c in data_classes], np.int64)


def markdown(metrics, mapping, top1, y_true, names):
    n = len(mapping.class_names)
    lines = [
        f"# Zero-shot: {metrics['model']} (ImageNet-1k) on {metrics['data']} -> {mapping.target} + other", "",
        f"- images: {metrics['size']} ({metrics['split']}), input {metrics['input_size']}x{metrics['input_size']}, "
        f"{metrics['seconds']} s ({metrics['images_per_second']} images/s)",
        f"- accuracy: **{100 * metrics['accuracy']:.2f}%** (\"other\" is always wrong); "
        f"{100 * metrics['other_share']:.1f}% of images mapped to other",
        f"- macro precision {metrics['precision_macro']:.4f}, macro recall {metrics['recall_macro']:.4f}", "",
        "Precision of c: of the images predicted c, the share that are c. Recall of c: of the images of c, "
        "the share predicted c. Other: images of c whose ImageNet class maps to no target class.", "",
        "| class | precision | recall | to other | ImageNet classes mapped | most frequent ImageNet top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for c, row in enumerate(metrics["per_class"]):
        mine = top1[y_true == c]
        common = np.bincount(mine, minlength=len(names)).argsort()[::-1][:3] if len(mine) else []
        freq = ", ".join(f"{names[k]} ({int((mine == k).sum())})" for k in common if (mine == k).any())
        lines.append(f"| {row['class']} | {row['precision_text']} | {row['recall_text']} | {row['to_other']} "
                     f"| {len(mapping.imagenet[row['class']])} | {freq} |")
    lines += ["", "## Confusion matrix (rows: true class; columns: mapped prediction)", "",
              "| true \\ pred | " + " | ".join(metrics["labels"]) + " |", "|---" * (n + 2) + "|"]
    for name, row in zip(mapping.class_names, metrics["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "## The mapping", ""]
    for name in mapping.class_names:
        lines.append(f"- **{name}**: {mapping.notes[name]}")
    return lines


def plot_confusion(cm, rows, cols, path, title):
    """The C x (C + 1) count matrix (ConfusionMatrixDisplay draws square ones only)."""
    cm = np.asarray(cm)
    fig = new_figure(0.75 * len(cols) + 2.5, 0.7 * len(rows) + 2.0)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > top / 2 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("mapped prediction")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
