"""`kerasclf evaluate`: checkpoint + data -> predictions -> eval/<split>/ report.

The checkpoint carries class names, the training data spec and the input size (LabelInfo
layer); the run's config.yaml beside it, when present, reproduces the exact splits.
"""

from pathlib import Path

from kerasclf.errors import CheckpointError, DataError


def load_checkpoint(path):
    """Load a .keras file (safe mode) or raise a CheckpointError that says what to do."""
    import keras

    from kerasclf.models import register_serializables
    from kerasclf.safe_load import explain_load_failure, refuse_lambda

    register_serializables()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not exist. Runs write logs/<run>/best.keras and last.keras; "
            "pass one of those with --checkpoint."
        )
    refuse_lambda(path)  # before Keras reads it: say why, in kerasclf's terms
    try:
        model = keras.saving.load_model(str(path), safe_mode=True)
    except Exception as exc:  # zip/JSON/HDF5 errors all mean "not a usable checkpoint"
        raise explain_load_failure(path, exc) from None
    try:
        labels = model.get_layer("labels")
    except ValueError:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is a Keras model but not a kerasclf one (no 'labels' layer with class "
            "names); train it with `kerasclf train`."
        ) from None
    return model, labels


def _run_config(checkpoint):
    """The resolved config of the run the checkpoint sits in, or None for a lone checkpoint."""
    from kerasclf.config import load_config

    path = Path(checkpoint).parent / "config.yaml"
    return load_config(path) if path.is_file() else None


def _data_config(run_cfg, labels, data_spec, data_dir):
    """The run's data config when there is one, pointed at `data_spec` if given."""
    from kerasclf.config import DataConfig

    if run_cfg is not None:
        cfg = run_cfg.data
    else:  # a checkpoint on its own: its data, restricted to the classes it was trained on
        cfg = DataConfig(source=labels.source, classes=list(labels.class_names))
    if data_spec:
        cfg.source = data_spec
        cfg.classes = None  # other data: use all of its classes and check them against the model's
    if data_dir:
        cfg.data_dir = data_dir
    cfg.image_size = labels.image_size  # feed the size the model was trained on
    return cfg


def evaluate_checkpoint(checkpoint, split="test", data=None, data_dir=None, batch_size=256, out_dir=None, dataset=None):
    """Predict `split` and write the report. `dataset`: the already-built Dataset the run
    trained on (right after training), which saves decoding or reading the data again."""
    from kerasclf.data import build_dataset
    from kerasclf.evaluation.report import write_report

    model, labels = load_checkpoint(checkpoint)
    if dataset is None:
        run_cfg = _run_config(checkpoint)
        seed = run_cfg.seed if run_cfg is not None else 0
        dataset = build_dataset(_data_config(run_cfg, labels, data, data_dir), seed)
    if list(dataset.info.class_names) != list(labels.class_names):
        raise CheckpointError(
            f"The checkpoint was trained on classes {_short(labels.class_names)} but the data "
            f"{dataset.info.source!r} has classes {_short(dataset.info.class_names)}. Evaluate on data with the "
            "same class folders/names (in the same order), or train a model for this data."
        )
    chosen = dataset.split(split)
    if chosen is None or len(chosen) == 0:
        available = [s for s in ("train", "val", "test") if dataset.split(s) is not None and len(dataset.split(s))]
        raise DataError(
            f"The data {dataset.info.source!r} has no {split!r} split (it has: {', '.join(available)}). "
            f"Use --split {available[-1]}, or set data.test_fraction / data.val_fraction when training."
        )
    probs = model.predict(chosen.x, batch_size=batch_size, verbose=0)
    run_dir = Path(checkpoint).parent
    out = Path(out_dir) if out_dir else run_dir / "eval" / split
    history = run_dir / "history.csv"
    result = write_report(
        out, chosen.y, probs, labels.class_names, images=chosen.x,
        history_csv=history if history.is_file() else None,
        title=f"{model.name} on {dataset.info.source}", split=split,
        extra={"checkpoint": str(checkpoint), "data": dataset.info.source},
        run=_run_facts(model, run_dir),
    )
    _log_confusion_to_tensorboard(run_dir, split, result)
    return result


def _run_facts(model, run_dir):
    """Parameter counts and frozen layers of the checkpoint, plus the run's own metrics when beside it."""
    import json

    from kerasclf.models.freeze import describe_trainable

    facts = {"model": model.name, **describe_trainable(model)}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        run = json.loads(metrics.read_text())
        facts.update({k: run[k] for k in ("dataset", "epochs_run", "best_epoch", "best_val_accuracy", "wall_seconds") if k in run})
    return facts


def _short(names, n=6):
    names = list(names)
    return "[" + ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "") + "]"


def _log_confusion_to_tensorboard(run_dir, split, result):
    """The count confusion matrix as an image in the run's TensorBoard (TensorFlow only)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return
    import numpy as np
    import tensorflow as tf

    from kerasclf.evaluation.figures import confusion_matrix_image

    image = confusion_matrix_image(np.asarray(result["confusion"]), result["class_names"])
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "eval"))
    with writer.as_default():
        tf.summary.image(f"confusion_matrix/{split}", image[None], step=0)
    writer.flush()
