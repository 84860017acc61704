"""`kerasclf evaluate`: checkpoint + data -> predictions -> eval/<split>/ report.

The checkpoint carries class names, the training data spec and the input size (LabelInfo
layer); the run's config.yaml and splits.json beside it, when present, reproduce the exact
splits and prove that val/test were not trained on. Other data (`--data`) is scored whole
by default and reported in eval/<data>-<split>/, never over the run's own eval/<split>/.
"""

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import yaml

from kerasclf.backend import have_tensorflow
from kerasclf.checkpoint import load_checkpoint
from kerasclf.config import DataConfig, load_config, to_dict
from kerasclf.data import Dataset, build_dataset
from kerasclf.data.pipeline import predict_inputs
from kerasclf.data.provenance import FILENAME, concatenate, read_splits, recorded_split, same_data
from kerasclf.errors import CheckpointError, DataError
from kerasclf.evaluation import dense_report
from kerasclf.evaluation.embed_checkpoint import add_embedding_report
from kerasclf.evaluation.figures import confusion_matrix_image
from kerasclf.evaluation.gradcam import plot_gradcam_gallery
from kerasclf.evaluation.html_report import write_html_report
from kerasclf.evaluation.report import write_report
from kerasclf.models.freeze import describe_trainable
from kerasclf.runs.rundir import dataset_slug
from kerasclf.runs.writable import check_writable, unwritable_reason


def _run_config(checkpoint):
    """The resolved config of the run the checkpoint sits in, or None for a lone checkpoint."""
    path = Path(checkpoint).parent / "config.yaml"
    return load_config(path) if path.is_file() else None


def _data_config(run_cfg, labels, data_spec, data_dir, everything):
    """The run's data config when there is one, pointed at `data_spec` if given.

    everything: no carving and no limit (`--split all`, and other data by default)."""
    if run_cfg is not None:
        cfg = run_cfg.data
    else:  # a checkpoint on its own: its data, restricted to the classes it was trained on
        cfg = DataConfig(source=labels.source, classes=list(labels.class_names))
    if data_spec:
        cfg.source = data_spec
        cfg.classes = None  # other data: use all of its classes and check them against the model's
    if everything:
        cfg.val_fraction = cfg.test_fraction = 0.0
        cfg.limit_per_class = None
    if data_dir:
        cfg.data_dir = data_dir
    cfg.image_size = labels.image_size  # feed the size the model was trained on
    return cfg


def default_split(data_spec):
    """Other data is evaluated whole; the run's own data on its test split."""
    return "all" if data_spec else "test"


def _out_dir(run_dir, split, data_spec, out_dir):
    """--out, else <run>/eval/<split> for the run's own data and <run>/eval/<data>-<split> for other data."""

    if out_dir:
        return Path(out_dir)
    if not data_spec:
        return run_dir / "eval" / split
    return run_dir / "eval" / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset_slug(data_spec)}-{split}")


def evaluate_checkpoint(
    checkpoint: Union[str, Path], split: Optional[str] = None, data: Optional[str] = None,
    data_dir: Optional[str] = None, batch_size: int = 256, out_dir: Union[str, Path, None] = None,
    dataset: Optional[Dataset] = None, embeddings: bool = False, tsne_points: int = 2000,
    threshold: Optional[float] = None,
) -> dict:
    """Predict `split` and write the report. `dataset`: the already-built Dataset the run
    trained on (right after training), which saves decoding or reading the data again.
    `embeddings`: also the embedding report (retrieval metrics, t-SNE, projector files) in
    <out>/embeddings/, as a section of report.md.

    split: train | val | test | all (every image); default: all for other data (`data`),
    test for the run's own. Evaluating the run's own val/test uses splits.json (see
    kerasclf.data.provenance) and refuses when the images could have been trained on."""
    split = split or default_split(data)
    run_dir = Path(checkpoint).parent
    model, labels = load_checkpoint(checkpoint)
    run_cfg = _run_config(checkpoint) if dataset is None else None
    if data and same_data_as_run(run_cfg, labels, data):
        data = None  # the training data named again: the same checks as without --data
    out = _out_dir(run_dir, split, data, out_dir)
    check_writable(  # before any data is read
        out, "--out" if out_dir else "The report folder", "Pass --out DIR with a folder you can write to."
    )
    if dataset is None:
        dataset, chosen = _evaluation_split(checkpoint, run_cfg, labels, split, data, data_dir)
    else:
        chosen = _own_split(dataset, split)
    if list(dataset.info.class_names) != list(labels.class_names):
        raise CheckpointError(
            f"The checkpoint was trained on classes {_short(labels.class_names)} but the data "
            f"{dataset.info.source!r} has classes {_short(dataset.info.class_names)}. Evaluate on data with the "
            "same class folders/names (in the same order), or train a model for this data."
        )
    history = run_dir / "history.csv"
    if getattr(labels, "task", "multiclass") != "multiclass":
        if threshold is None:
            threshold = run_cfg.eval.threshold if run_cfg is not None else 0.5
        result = _dense_report(model, labels, chosen, out, batch_size, threshold,
                               history_csv=history if history.is_file() else None,
                               title=f"{model.name} on {dataset.info.source}", split=split,
                               extra={"checkpoint": str(checkpoint), "data": dataset.info.source},
                               run=_run_facts(model, run_dir))
        if "confusion" in result:  # the pixel confusion matrix and the scalars; no PR curves per pixel
            named = {**result, "class_names": result.get("class_names") or list(labels.class_names)}
            _log_to_tensorboard(run_dir, out.name, named, np.zeros(0), np.zeros((0, 0), np.float32))
        return result
    probs = model.predict(**predict_inputs(chosen, batch_size), verbose=0)
    result = write_report(
        out, chosen.y, probs, labels.class_names, images=chosen.x,
        history_csv=history if history.is_file() else None,
        title=f"{model.name} on {dataset.info.source}", split=split,
        extra={"checkpoint": str(checkpoint), "data": dataset.info.source},
        run=_run_facts(model, run_dir),
        paths=getattr(chosen, "paths", None),
    )
    _log_to_tensorboard(run_dir, out.name, result, chosen.y, probs)
    _add_gradcam(model, chosen, probs, labels.class_names, out)
    if embeddings:
        result["embeddings"] = add_embedding_report(model, dataset, split, out, batch_size=batch_size,
                                                    tsne_points=tsne_points)
        _projector_to_tensorboard(out / "embeddings" / "projector", run_dir / "tensorboard" / f"projector_{out.name}")
    result["html_path"] = _write_html(run_dir, out, own_folder=out_dir is None)
    return result


def _write_html(run_dir, out, own_folder):
    """The run's report.html (every eval/<split>/ of the run) when the report went into the
    run directory; with --out, <out>/report.html for this evaluation alone."""
    if own_folder:
        return write_html_report(run_dir)
    return write_html_report(run_dir, out_path=out / "report.html", eval_dirs=[out])


def _dense_report(model, labels, chosen, out, batch_size, threshold, **report):
    """The report of a multilabel or segmentation checkpoint (kerasclf.evaluation.dense_report)."""
    if labels.task == "segmentation":
        predicted = dense_report.predict_masks(model, chosen.x, min(batch_size, 32))
        return dense_report.write_segmentation_report(out, chosen.y, predicted, labels.class_names, images=chosen.x,
                                                      **report)
    probs = model.predict(chosen.x, batch_size=batch_size, verbose=0)
    return dense_report.write_multilabel_report(out, chosen.y, probs, labels.class_names, images=chosen.x,
                                                threshold=threshold, **report)


def same_data_as_run(run_cfg, labels, data_spec):
    source = run_cfg.data.source if run_cfg is not None else labels.source
    return same_data(source, data_spec)


def _own_split(dataset, split):
    """`split` of an in-memory Dataset ("all": every image), or a DataError listing what there is."""
    if split == "all":
        return concatenate(dataset)
    chosen = dataset.split(split)
    if chosen is None or len(chosen) == 0:
        available = [s for s in ("train", "val", "test") if dataset.split(s) is not None and len(dataset.split(s))]
        raise DataError(
            f"The data {dataset.info.source!r} has no {split!r} split (it has: {', '.join(available)}). "
            f"Use --split {available[-1]} (or all), or set data.test_fraction / data.val_fraction when training."
        )
    return chosen


def _evaluation_split(checkpoint, run_cfg, labels, split, data, data_dir):
    """(dataset, split to score), refusing a val/test split that may hold training images."""

    if data is None and run_cfg is None and split in ("val", "test"):
        return _lone_checkpoint_split(checkpoint, labels, split, data_dir)
    seed = run_cfg.seed if run_cfg is not None else 0
    everything = split == "all" or (data is not None and split == "train")
    dataset = build_dataset(_data_config(run_cfg, labels, data, data_dir, everything), seed)
    if data is not None or split == "train":
        return dataset, _own_split(dataset, split)
    if split == "all":
        warnings.warn(
            f"--split all on the run's own data {dataset.info.source!r} includes its training images; "
            "the accuracy is not an estimate of accuracy on new images.",
            stacklevel=3,
        )
        return dataset, _own_split(dataset, split)
    run_dir = Path(checkpoint).parent
    record = read_splits(run_dir)
    if record is not None:
        chosen, note = recorded_split(dataset, record, split)
        if chosen is None:
            return dataset, _own_split(dataset, split)  # a DataError naming the splits there are
        if note:
            warnings.warn(note, stacklevel=3)
        return dataset, chosen
    warnings.warn(
        f"{run_dir} has no {FILENAME} (a run from an older kerasclf): the {split} split is carved again "
        f"from config.yaml's seed. If the data changed since training, it may include training images.",
        stacklevel=3,
    )
    return dataset, _own_split(dataset, split)


def _lone_checkpoint_split(checkpoint, labels, split, data_dir):
    """Without its run directory, only a split the data set itself provides (a test/ folder,
    CIFAR's test set) is known not to have been trained on; a carved one is refused."""
    native = build_dataset(_data_config(None, labels, None, data_dir, everything=True), 0)
    chosen = native.split(split)
    if chosen is None or len(chosen) == 0:
        raise CheckpointError(
            f"{checkpoint} has no run directory beside it (config.yaml, {FILENAME}), and {labels.source!r} "
            f"has no {split} split of its own, so its {split} split would be carved again and could hold the "
            "images the model was trained on. Keep the checkpoint in its run directory, or evaluate on other "
            "images with --data SPEC (all of them are used)."
        )
    return native, chosen


def _run_facts(model, run_dir):
    """Parameter counts and frozen layers of the checkpoint, plus the run's own metrics when beside it."""

    facts = {"model": model.name, **describe_trainable(model)}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        run = json.loads(metrics.read_text())
        facts.update({k: run[k] for k in ("dataset", "epochs_run", "best_epoch", "best_val_accuracy", "wall_seconds",
                                           "first_epoch_seconds", "steady_seconds_per_epoch") if k in run})
    if (run_dir / "augmented_batch.png").is_file():
        facts["augmented_batch"] = str(run_dir / "augmented_batch.png")
    flow = sorted((run_dir / "gradient_flow").glob("epoch_*.png"))
    if flow:
        facts["gradient_flow_figures"] = [str(p) for p in flow]
    if (run_dir / "config.yaml").is_file():
        facts["run_name"] = run_dir.name
        facts["hyperparameters"] = hyperparameters(run_dir / "config.yaml")
    return facts


# Shown in report.md for every run even when left at their default.
ALWAYS_SHOWN = ("seed", "data.batch_size", "optim.name", "optim.lr", "optim.schedule", "train.epochs", "loss.name")
NOT_HYPERPARAMETERS = ("train.log_dir", "train.run_name", "data.data_dir", "train.verbose", "name", "plugins")


def hyperparameters(config_yaml):
    """{dotted key: value} of a run's config.yaml: ALWAYS_SHOWN, then each key whose value is
    not the default (what distinguishes this run), in the file's order."""
    run = _flatten(yaml.safe_load(Path(config_yaml).read_text()) or {})
    default = _flatten(to_dict(load_config(None, [])))
    keys = [k for k in ALWAYS_SHOWN if k in run]
    keys += [k for k in run if k not in keys and k not in NOT_HYPERPARAMETERS and run[k] != default.get(k, object())]
    return {k: run[k] for k in keys}


def _short(names, n=6):
    names = list(names)
    return "[" + ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "") + "]"


def _add_gradcam(model, chosen, probs, class_names, out):
    """misclassified_gradcam.png, linked at the end of report.md, where the model has a
    convolutional feature map (kerasclf.evaluation.gradcam)."""
    if getattr(chosen, "x", None) is None or not hasattr(chosen.x, "__getitem__"):
        return None
    try:
        path = plot_gradcam_gallery(model, chosen.x, chosen.y, probs, class_names, out / "misclassified_gradcam.png")
    except ValueError as exc:  # an architecture the map cannot be cut from: the other reports still matter
        warnings.warn(f"No Grad-CAM gallery for this model ({exc}); every other report was written.", stacklevel=2)
        return None
    report = out / "report.md"
    if path and report.is_file():
        caption = "Grad-CAM on the misclassified images (predicted class; red: where the score rose)"
        report.write_text(report.read_text().rstrip("\n") + f"\n\n### {caption}\n\n![{caption}](misclassified_gradcam.png)\n")
    return path


def _projector_to_tensorboard(projector, target):
    """A copy of the projector files as a run of the run's own TensorBoard (TensorBoard's
    projector reads projector_config.pbtxt only in a directory that holds an event file)."""
    if not have_tensorflow() or not Path(projector).is_dir():
        return
    reason = unwritable_reason(target)
    if reason is not None:
        warnings.warn(f"The embedding projector is not added to the run's TensorBoard: {reason}.", stacklevel=3)
        return
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(projector, target)
    writer = tf.summary.create_file_writer(str(target))  # an event file: the directory is a run
    with writer.as_default(), tf.summary.record_if(True):
        tf.summary.text("projector", "Embeddings of the evaluated split: open the PROJECTOR tab", step=0)
    writer.flush()
    writer.close()


TENSORBOARD_SCALARS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "macro_auc")
MAX_PR_CURVES = 30  # one card per class: beyond this many, the per-class AP in the report reads better


def _log_to_tensorboard(run_dir, split, result, y_true, y_prob):
    """The evaluated split in the run's TensorBoard (run "eval", TensorFlow only), at the step of
    the checkpoint's epoch so it lines up with the curves: <split>/accuracy, F1, AUC... as
    scalars, <split>/confusion_matrix as an image and one-vs-rest <split>/pr_curve/<class>.
    Skipped with a warning when the run directory cannot be written (the report is written)."""
    if not have_tensorflow():
        return
    reason = unwritable_reason(run_dir / "tensorboard" / "eval")
    if reason is not None:
        warnings.warn(f"The evaluation is not added to the run's TensorBoard: {reason}.", stacklevel=3)
        return
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)
    from tensorboard.plugins.pr_curve import summary as pr_summary  # lazy: comes with TensorFlow

    step = 0
    if (run_dir / "metrics.json").is_file():
        run = json.loads((run_dir / "metrics.json").read_text())
        step = int(run.get("best_epoch") or run.get("epochs_run") or 0)
    names = result["class_names"]
    image = confusion_matrix_image(np.asarray(result["confusion"]), names, title=f"{split}, epoch {step}")
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, np.float32)
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "eval"))
    with writer.as_default(), tf.summary.record_if(True):
        tf.summary.image(f"{split}/confusion_matrix", image[None], step=step)
        for key in TENSORBOARD_SCALARS:
            if result.get(key) is not None:
                tf.summary.scalar(f"{split}/{key}", float(result[key]), step=step)
        if y_prob.ndim == 2 and y_prob.shape[1] == len(names) and len(names) <= MAX_PR_CURVES:
            for c, name in enumerate(names):
                proto = pr_summary.pb(f"{split}/pr_curve/{name}", y_true == c, y_prob[:, c], num_thresholds=101,
                                      display_name=f"{split} PR curve: {name} vs rest")
                tf.summary.experimental.write_raw_pb(proto.SerializeToString(), step=step)
    writer.flush()


def _flatten(config, prefix=""):
    out = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
