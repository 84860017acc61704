"""One training run: config -> data -> model -> fit with callbacks -> logs/<run>/.

The run directory holds the resolved config, splits.json, history.csv, TensorBoard events,
best.keras, last.keras, metrics.json and resume/state.npz (what `train --resume` continues
from); evaluation reports go to eval/<split>/. Every file is written atomically
(kerasclf/runs/atomic.py). Model assembly is training/assemble.py; the run directory, resume
state and clean stops are training/keeper.py.
"""

import logging
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from sklearn.metrics import confusion_matrix

from kerasclf.backend import have_tensorboard
from kerasclf.checkpoint import load_checkpoint
from kerasclf.config import Config, data_task, label_format
from kerasclf.data.pipeline import predict_inputs
from kerasclf.data.provenance import FILENAME, read_splits, write_splits
from kerasclf.errors import KerasclfError, RunInterrupted, RunStopped
from kerasclf.evaluation.evaluate import evaluate_checkpoint
from kerasclf.evaluation.figures import confusion_matrix_image
from kerasclf.layers.jit import warn_if_not_jit
from kerasclf.layers.mixing import batch_mixer
from kerasclf.losses import build_loss
from kerasclf.losses.dense import task_metrics
from kerasclf.models.freeze import apply_trainable
from kerasclf.runs.atomic import write_json
from kerasclf.runs.keeper import Resume, RunKeeper
from kerasclf.runs.rundir import unlock_run_dir
from kerasclf.training import aux as aux_loss
from kerasclf.training.assemble import prepare
from kerasclf.training.augmented_view import write_augmented_batch
from kerasclf.training.callbacks import LearningRateLogger, SystemMonitor, TestAccuracy
from kerasclf.training.distribute import build_distribution, check_global_batch, check_split_sizes
from kerasclf.training.epoch_hooks import EpochHooks
from kerasclf.training.feeding import choose_feeder
from kerasclf.training.gradient_flow import gradient_flow_callbacks
from kerasclf.training.optimizers import build_optimizer
from kerasclf.training.progress import fit_verbosity


def _mixing_fn(cfg):
    if not (cfg.augment.mixup or cfg.augment.cutmix):
        return None
    return batch_mixer(cfg.augment.mixup, cfg.augment.cutmix, seed=cfg.seed)


def compile_model(model, cfg, steps_per_epoch, optim=None, epochs=None, weighted=False):
    """Compile with the configured loss (kerasclf.losses) and optimizer (kerasclf.training.optimizers);
    `optim`/`epochs` override for a fine-tuning phase. `weighted`: the metrics read the batches'
    sample weights (a multi-process run's padded evaluation batches, data.pipeline.fit_inputs)."""
    optimizer = build_optimizer(scaled_optim(optim or cfg.optim, cfg.data.batch_size), steps_per_epoch,
                                epochs or cfg.train.epochs)
    loss, _ = build_loss(cfg)
    task = data_task(cfg.data)
    if task == "multiclass":
        metrics = ["accuracy"]
    else:
        num_classes = getattr(model, "inner", model).outputs[0].shape[-1]  # a segmentation trainer wraps the model
        metrics = task_metrics(task, num_classes, cfg.eval.threshold)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        **{"weighted_metrics" if weighted else "metrics": metrics},
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=cfg.train.steps_per_execution,
    )
    warn_if_not_jit(model)


def scaled_optim(optim, batch_size):
    """optim.scale_lr_with_batch: the linear scaling rule, lr x batch / the batch lr was tuned for."""
    if not optim.scale_lr_with_batch:
        return optim
    return replace(optim, lr=optim.lr * batch_size / optim.scale_lr_with_batch)


def _monitor(cfg, has_val):
    monitor = cfg.train.monitor if has_val or not cfg.train.monitor.startswith("val_") else cfg.train.monitor[4:]
    return monitor, ("min" if "loss" in monitor else "max")


def validation_confusion(model, split, class_names, batch_size):
    """() -> the validation confusion matrix image of `model` now (TensorBoard, every epoch);
    None without a validation split."""
    if split is None or len(split) == 0:
        return None
    def image():
        probs = model.predict(**predict_inputs(split, batch_size), verbose=0)
        pred = probs.argmax(-1) if probs.shape[-1] > 1 else (probs[:, 0] > 0.5).astype(int)
        cm = confusion_matrix(split.y, pred, labels=range(len(class_names)))
        return confusion_matrix_image(cm, class_names, title=f"validation ({len(split)} images)")

    return image


def _callbacks(cfg, keeper, monitor, mode, test_inputs, checkpoint_cls, phase_start=0, keep_best=True, confusion=None):
    """The run's callbacks for one phase: best.keras is only replaced by an epoch that beats
    the best of the epochs already in the history (an earlier phase or session). `keeper`
    (training/keeper.py) gives the history writer, TensorBoard and early stopping that
    continue across phases and resumed sessions. keep_best=False: no best.keras (_keeps_best)."""
    run_dir = keeper.run_dir
    callbacks = [EpochHooks(), LearningRateLogger(), SystemMonitor()]
    if test_inputs is not None:
        callbacks.append(TestAccuracy(test_inputs))
    if keep_best:
        callbacks.append(checkpoint_cls(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True,
            initial_value_threshold=_best_so_far(keeper.history.rows, monitor, mode),
        ))
    callbacks += [checkpoint_cls(str(run_dir / "last.keras")), keeper.history]
    if have_tensorboard():
        callbacks.append(keeper.tensorboard(str(run_dir / "tensorboard"), update_freq=10, write_graph=False,
                                            confusion_image=confusion))
    if cfg.train.early_stop_patience:
        callbacks.append(
            keeper.early_stopping(phase_start, monitor=monitor, mode=mode, patience=cfg.train.early_stop_patience)
        )
    return callbacks


def _best_so_far(rows, monitor, mode):
    values = [row[monitor] for row in rows if isinstance(row.get(monitor), float)]
    return (min if mode == "min" else max)(values) if values else None


def _fit(fit_model, fit_kwargs, callbacks, initial_epoch, epochs, verbose, multi_process=False):
    """model.fit from `initial_epoch`. Ctrl-C, SIGTERM and a non-finite loss raise out of it
    (training/stops.py); what the finished epochs saved stays. `multi_process`: Keras shards the
    input per process with tf.data ops that lose the epoch's batch count, so it learns the count
    when the first epoch's input ends and warns that the input "ran out of data"; that warning
    says nothing there and is not shown."""
    verbose, progress = fit_verbosity(verbose)  # "auto": one line per epoch unless stdout is a terminal
    if initial_epoch < epochs:
        logging.getLogger("kerasclf").info(
            "training epochs %d-%d; the first step compiles the model, which can take a minute on a CPU",
            initial_epoch + 1, epochs)
    with warnings.catch_warnings():
        if multi_process:
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        fit_model.fit(
            initial_epoch=initial_epoch, epochs=epochs, callbacks=callbacks + progress, verbose=verbose, **fit_kwargs
        )


def train(cfg: Config, verbose: Union[int, str, None] = None, resume: Optional[Resume] = None) -> tuple[Path, dict]:
    """Train per `cfg`; returns (run_dir, metrics).

    With train.finetune_epochs > 0, a second phase follows: the model is re-frozen to
    train.finetune_trainable and trained on with the learning rate times
    train.finetune_lr_factor (the Keras transfer-learning guide's two-phase recipe).
    `resume` (training.keeper.open_resume): continue that run from its last finished epoch.
    train.distribute (training/distribute.py): data, model, compile and fit run in the
    engine's scope; the test accuracy and reports after training run on one device.
    Raises RunInterrupted (Ctrl-C / SIGTERM) or NonFiniteLoss after writing metrics.json.
    """
    distribution = build_distribution(cfg)  # first: a TensorFlow cluster must start before any other op
    cfg = distribution.local_config(cfg)
    keeper = None
    recorded = read_splits(resume.run_dir) if resume is not None else None
    try:
        with distribution.scope():
            prepared = prepare(cfg, recorded)  # it checks log_dir and imports TensorFlow quietly
            check_global_batch(cfg.data.batch_size, distribution)
            check_split_sizes(prepared.data, distribution.name, distribution.devices, distribution.multi_process)
            prepared.summary.update(distribution.describe(cfg.data.batch_size))
            prepared.summary["lr_effective"] = scaled_optim(cfg.optim, cfg.data.batch_size).lr
            feeder = choose_feeder(cfg, prepared.data, label_format(cfg) == "one_hot", _mixing_fn(cfg),
                                   static_batches=distribution.multi_process)
            if distribution.multi_process:  # the partial batch each epoch drops, stated
                prepared.summary["train_images_dropped_per_epoch"] = feeder.train_images_dropped_per_epoch()
            keeper = RunKeeper(cfg, prepared.model, feeder, resume)
        return _train(cfg, prepared, feeder, keeper, verbose, distribution)
    finally:  # the run directory is free again (for a --resume in this same process, too)
        unlock_run_dir(keeper.lock if keeper is not None else getattr(resume, "lock", None))
        distribution.close()


def _train(cfg, prepared, feeder, keeper, verbose, distribution):
    data, model = prepared.data, prepared.model
    run_dir = keeper.run_dir
    if not (run_dir / FILENAME).is_file():  # a resumed run keeps its record (and trains on it: assemble.prepare)
        write_splits(run_dir, cfg, data)  # which images are train/val/test, for `kerasclf evaluate`
    if keeper.next_epoch == 0 and len(data.train) and data.info.task == "multiclass":  # class-labelled images
        write_augmented_batch(model, data.train, data.info.class_names, run_dir / "augmented_batch.png", seed=cfg.seed)
    has_val = data.val is not None and len(data.val) > 0
    has_test = data.test is not None and len(data.test) > 0
    steps = feeder.steps_per_epoch()
    verbose = cfg.train.verbose if verbose is None else verbose
    with distribution.scope():  # the wrappers' variables (resident table, centres) live on every device
        aux = aux_loss.setup(cfg, model, data)  # CE + loss.aux_weight * triplet/center on the embedding
        fit_model = feeder.model_to_fit(model) if aux is None else aux.fit_model(feeder.model_to_fit)
    checkpoint_cls = feeder.checkpoint if aux is None else aux.checkpoint_class()
    prepared.summary["aux_loss"] = aux_loss.aux_name(cfg)
    test_inputs = feeder.inputs("test") if has_test and cfg.train.eval_test_each_epoch else None
    monitor, mode = _monitor(cfg, has_val)
    keep_best = _keeps_best(cfg, monitor)
    checkpoint_name = "best.keras" if keep_best else "last.keras"
    fit_kwargs = feeder.inputs("train", training=True)
    if has_val:
        val = feeder.inputs("val")
        fit_kwargs["validation_data"] = (val["x"], val["y"]) if "y" in val else val["x"]
        if "batch_size" in val:
            fit_kwargs["validation_batch_size"] = val["batch_size"]
    first, total = cfg.train.epochs, cfg.train.epochs + cfg.train.finetune_epochs
    confusion = None
    if data.info.task == "multiclass" and not distribution.multi_process:  # one label per image: where it goes
        confusion = validation_confusion(model, data.val if has_val else None, data.info.class_names,
                                         cfg.data.batch_size)

    def log():
        return _history_log(keeper.history.rows)

    def run_phase(phase, start, end, **compile_kwargs):
        compile_model(fit_model, cfg, steps, weighted=distribution.multi_process, **compile_kwargs)
        keeper.restore(fit_model, phase)
        callbacks = _callbacks(cfg, keeper, monitor, mode, test_inputs, checkpoint_cls, phase_start=start,
                               keep_best=keep_best, confusion=confusion)
        callbacks += gradient_flow_callbacks(cfg, model, data, run_dir, start_epoch=start)
        _fit(fit_model, fit_kwargs, keeper.guard(callbacks, phase, end, steps), max(start, keeper.next_epoch), end,
             verbose, multi_process=distribution.multi_process)

    try:
        with distribution.scope(), keeper.stopping():
            if keeper.next_epoch < first:
                run_phase(1, 0, first)
            if cfg.train.finetune_epochs and log().get(monitor) and keeper.next_epoch < total:
                prepared.summary["finetune"] = apply_trainable(model, cfg.train.finetune_trainable)
                optim = replace(cfg.optim, lr=cfg.optim.lr * cfg.train.finetune_lr_factor, warmup_epochs=0.0)
                run_phase(2, first, total, optim=optim, epochs=cfg.train.finetune_epochs)
    except RunStopped as stop:
        _write_json(run_dir / "metrics.json", _metrics(prepared.summary, keeper, log(), monitor, feeder, stop))
        raise
    metrics = _metrics(prepared.summary, keeper, log(), monitor, feeder)
    metrics["checkpoint"] = checkpoint_name
    if not distribution.on_one_device_after_training():  # another process of a multi-process run: the chief reports
        metrics["run_directory"] = "written by process 0"
        return run_dir, metrics
    if not keep_best:
        metrics["best_epoch"] = None  # no epoch was chosen: last.keras is the final one
    if has_test and (run_dir / checkpoint_name).exists() and data.info.task == "multiclass":
        metrics["test_accuracy"] = _test_accuracy(run_dir / checkpoint_name, data.test, cfg.data.batch_size)
    _write_json(run_dir / "metrics.json", metrics)
    if cfg.train.evaluate_after and (run_dir / checkpoint_name).exists() and (has_test or has_val):
        report = _evaluate_after(
            run_dir / checkpoint_name, data, "test" if has_test else "val", embeddings=aux is not None,
            threshold=cfg.eval.threshold,
        )
        metrics["report_path"] = report and report["report_path"]
        if report and data.info.task != "multiclass":  # the task's headline figures, from the report
            split = "test" if has_test else "val"
            for key in HEADLINE.get(data.info.task, ()):
                metrics[f"{split}_{key}"] = report.get(key)
            _write_json(run_dir / "metrics.json", metrics)
    return run_dir, metrics


# What metrics.json repeats from the evaluation report of a multilabel / segmentation run.
HEADLINE = {"multilabel": ("mAP", "f1_macro", "subset_accuracy"), "segmentation": ("mean_iou", "fw_iou", "pixel_accuracy")}


def _keeps_best(cfg, monitor):
    """A val_* monitor with no validation data would pick the "best" epoch on training
    accuracy, which rewards overfitting: then the run keeps only last.keras and says so."""
    if monitor == cfg.train.monitor:
        return True
    warnings.warn(
        f"There is no validation split (the data has none and data.val_fraction=0), so no epoch can be "
        f"chosen on {cfg.train.monitor}: the run keeps only last.keras (the final epoch), not best.keras"
        f"{', and early stopping watches training ' + monitor if cfg.train.early_stop_patience else ''}. "
        "Set data.val_fraction > 0 to keep the best epoch.",
        stacklevel=3,
    )
    return False


def _history_log(rows):
    """History rows -> {column: [values]} (every epoch of the run, earlier sessions included)."""
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k != "epoch"]
    return {k: [row[k] for row in rows if k in row] for k in keys}


def _metrics(summary, keeper, log, monitor, feeder, stop=None):
    """metrics.json: `stopped` names why a run ended early (null when it finished)."""
    metrics = _run_metrics(summary, log, monitor, keeper.wall_seconds(), stop is not None)
    metrics["data_on_device"] = feeder.resident
    metrics["stopped"] = None if stop is None else (
        {2: "SIGINT", 15: "SIGTERM"}.get(stop.signum, "signal") if isinstance(stop, RunInterrupted) else "non-finite loss"
    )
    metrics["sessions"] = keeper.sessions
    metrics["changes"] = keeper.changes  # what a resume changed, e.g. a lowered optim.lr after a non-finite loss
    metrics["resumed_from_epoch"] = keeper.resumed_from
    return metrics


def _evaluate_after(checkpoint, data, split, embeddings=False, threshold=0.5):
    """Reports for the run's checkpoint on the data already in memory; a failure keeps the run.
    `embeddings`: add the embedding report (runs trained with an auxiliary metric loss)."""
    try:
        return evaluate_checkpoint(checkpoint, split=split, dataset=data, embeddings=embeddings, threshold=threshold)
    except KerasclfError as exc:
        warnings.warn(f"Evaluation after training failed (the run is kept): {exc}", stacklevel=2)
        return None


def epoch_times(seconds):
    """(first epoch s, steady s per epoch) from history's epoch_seconds: the first epoch also
    compiles the model (seconds against a fraction of that later), so the steady figure is
    the median of the later epochs (robust to a slow one); None for it with a single epoch."""
    seconds = [float(s) for s in seconds if isinstance(s, (int, float)) and s == s]
    if not seconds:
        return None, None
    later = sorted(seconds[1:])
    steady = None if not later else (later[len(later) // 2] if len(later) % 2 else sum(later[len(later) // 2 - 1: len(later) // 2 + 1]) / 2)
    return round(seconds[0], 2), None if steady is None else round(steady, 2)


def _run_metrics(summary, log, monitor, wall, interrupted):
    values = log.get(monitor, [])
    first, steady = epoch_times(log.get("epoch_seconds", []))
    best = (min if "loss" in monitor else max)(range(len(values)), key=values.__getitem__) if values else None
    return {
        **summary,
        "epochs_run": len(values),
        "monitor": monitor,
        "best_epoch": None if best is None else best + 1,
        "best_val_accuracy": None if best is None or "val_accuracy" not in log else float(log["val_accuracy"][best]),
        "final_train_accuracy": float(log["accuracy"][-1]) if log.get("accuracy") else None,
        "test_accuracy": None,
        # from the moment data and model are built to the end of the last epoch: compiling and
        # every epoch with its validation pass; not loading data, the final test evaluation,
        # reports or the process start
        "wall_seconds": round(wall, 2),
        "seconds_per_epoch": round(wall / len(values), 2) if values else None,  # wall / epochs, compilation included
        "first_epoch_seconds": first,  # includes compiling the train and validation steps
        "steady_seconds_per_epoch": steady,  # median of epochs 2..N
        "interrupted": interrupted,
    }


def _test_accuracy(checkpoint, split, batch_size):
    model, _ = load_checkpoint(checkpoint)
    probs = model.predict(**predict_inputs(split, batch_size), verbose=0)
    return float((probs.argmax(-1) == split.y).mean())


def _write_json(path, obj):
    write_json(path, obj, default=float)
