"""One training run: config -> data -> model -> fit with callbacks -> logs/<run>/.

The run directory holds the resolved config, history.csv, TensorBoard events, best.keras,
last.keras, metrics.json and resume/state.npz (what `train --resume` continues from);
evaluation reports go to eval/<split>/. Every file is written atomically (kerasclf/atomic.py).
"""

import math
import warnings
from dataclasses import dataclass


@dataclass
class Prepared:
    cfg: object
    data: object
    model: object
    summary: dict


def setup_backend(cfg):
    import keras

    if cfg.train.deterministic:  # first: XLA reads its flags when the backend starts
        from kerasclf.training.determinism import enable_determinism

        enable_determinism()
    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy(cfg.train.mixed_precision)


def prepare(cfg):
    """Build data and model (no training): what --dry-run prints and train() starts from."""
    from kerasclf.data import build_dataset
    from kerasclf.models import build_model, builder_kwargs
    from kerasclf.models.freeze import apply_trainable

    builder_kwargs(cfg.model)  # unknown model / model key: fail before loading (or downloading) data
    _check_monitor(cfg)
    setup_backend(cfg)
    data = build_dataset(cfg.data, cfg.seed)
    model = build_model(cfg, data.info)
    _init_from_data(cfg, model, data)
    trainable = apply_trainable(model, cfg.model.trainable)
    summary = {
        "dataset": cfg.data.source,
        "class_names": data.info.class_names,
        "num_classes": data.info.num_classes,
        "image_size": list(data.info.image_size),
        **data.sizes(),
        "model": cfg.model.name,
        **trainable,
    }
    return Prepared(cfg, data, model, summary)


def _init_from_data(cfg, model, data):
    """Models registered with needs_data (airbench's patch whitening) set layers from train images.

    Skipped when weights come from a file: the saved, data-derived values are already loaded.
    """
    from kerasclf.models import load_builtin_models

    if load_builtin_models().get(cfg.model.name).meta.get("needs_data") and cfg.model.weights in (None, "none"):
        from kerasclf.models.data_init import init_from_data

        init_from_data(model, data.train.x, seed=cfg.seed)


def _check_monitor(cfg):
    """train.monitor must be a value the run logs, or no epoch is ever 'best'."""
    from kerasclf.errors import ConfigError, did_you_mean

    logged = ["val_accuracy", "val_loss", "accuracy", "loss"]
    if cfg.train.eval_test_each_epoch:
        logged += ["test_accuracy", "test_loss"]
    if cfg.train.monitor not in logged:
        raise ConfigError(
            f"train.monitor={cfg.train.monitor!r} is not logged by this run.{did_you_mean(cfg.train.monitor, logged)} "
            f"Choose one of {', '.join(logged)} (test_* need train.eval_test_each_epoch=true)."
        )


def _uses_one_hot(cfg):
    return cfg.loss.label_smoothing > 0 or cfg.augment.mixup > 0 or cfg.augment.cutmix > 0


def _mixing_fn(cfg):
    if not (cfg.augment.mixup or cfg.augment.cutmix):
        return None
    from kerasclf.layers.mixing import batch_mixer

    return batch_mixer(cfg.augment.mixup, cfg.augment.cutmix, seed=cfg.seed)


def compile_model(model, cfg, steps_per_epoch, optim=None, epochs=None):
    """Compile with the configured loss; `optim`/`epochs` override for a fine-tuning phase."""
    import keras

    from kerasclf.layers.jit import warn_if_not_jit
    from kerasclf.training.optimizers import build_optimizer

    optimizer = build_optimizer(optim or cfg.optim, steps_per_epoch, epochs or cfg.train.epochs)
    if _uses_one_hot(cfg):
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.loss.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=["accuracy"],
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=cfg.train.steps_per_execution,
    )
    warn_if_not_jit(model)


def _monitor(cfg, has_val):
    monitor = cfg.train.monitor if has_val or not cfg.train.monitor.startswith("val_") else cfg.train.monitor[4:]
    return monitor, ("min" if "loss" in monitor else "max")


def _callbacks(cfg, keeper, monitor, mode, test_inputs, checkpoint_cls, phase_start=0):
    """The run's callbacks for one phase: best.keras is only replaced by an epoch that beats
    the best of the epochs already in the history (an earlier phase or session). `keeper`
    (training/keeper.py) gives the history writer, TensorBoard and early stopping that
    continue across phases and resumed sessions."""
    from kerasclf.training.callbacks import LearningRateLogger, SystemMonitor, TestAccuracy

    run_dir = keeper.run_dir
    callbacks = [LearningRateLogger(), SystemMonitor()]
    if test_inputs is not None:
        callbacks.append(TestAccuracy(test_inputs))
    callbacks += [
        checkpoint_cls(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True,
            initial_value_threshold=_best_so_far(keeper.history.rows, monitor, mode),
        ),
        checkpoint_cls(str(run_dir / "last.keras")),
        keeper.history,
    ]
    if _tensorboard_available():
        callbacks.append(keeper.tensorboard(str(run_dir / "tensorboard"), update_freq=10, write_graph=False))
    if cfg.train.early_stop_patience:
        callbacks.append(
            keeper.early_stopping(phase_start, monitor=monitor, mode=mode, patience=cfg.train.early_stop_patience)
        )
    return callbacks


def _best_so_far(rows, monitor, mode):
    values = [row[monitor] for row in rows if isinstance(row.get(monitor), float)]
    return (min if mode == "min" else max)(values) if values else None


def _tensorboard_available():
    import importlib.util

    # keras.callbacks.TensorBoard writes through tf.summary: TensorFlow and TensorBoard are required.
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


def _fit(fit_model, fit_kwargs, callbacks, initial_epoch, epochs, verbose):
    """model.fit from `initial_epoch`. Ctrl-C, SIGTERM and a non-finite loss raise out of it
    (training/stops.py); what the finished epochs saved stays."""
    fit_model.fit(initial_epoch=initial_epoch, epochs=epochs, callbacks=callbacks, verbose=verbose, **fit_kwargs)


def train(cfg, verbose=None, resume=None):
    """Train per `cfg`; returns (run_dir, metrics).

    With train.finetune_epochs > 0, a second phase follows: the model is re-frozen to
    train.finetune_trainable and trained on with the learning rate times
    train.finetune_lr_factor (the Keras transfer-learning guide's two-phase recipe).
    `resume` (training.keeper.open_resume): continue that run from its last finished epoch.
    Raises RunInterrupted (Ctrl-C / SIGTERM) or NonFiniteLoss after writing metrics.json.
    """
    from kerasclf.training.feeding import choose_feeder
    from kerasclf.training.keeper import RunKeeper
    from kerasclf.training.rundir import unlock_run_dir

    keeper = None
    try:
        prepared = prepare(cfg)
        feeder = choose_feeder(cfg, prepared.data, _uses_one_hot(cfg), _mixing_fn(cfg))
        keeper = RunKeeper(cfg, prepared.model, feeder, resume)
        return _train(cfg, prepared, feeder, keeper, verbose)
    finally:  # the run directory is free again (for a --resume in this same process, too)
        unlock_run_dir(keeper.lock if keeper is not None else getattr(resume, "lock", None))


def _train(cfg, prepared, feeder, keeper, verbose):
    from kerasclf.errors import RunStopped

    data, model = prepared.data, prepared.model
    run_dir = keeper.run_dir
    has_val = data.val is not None and len(data.val) > 0
    has_test = data.test is not None and len(data.test) > 0
    steps = math.ceil(len(data.train) / cfg.data.batch_size)
    verbose = cfg.train.verbose if verbose is None else verbose
    fit_model = feeder.model_to_fit(model)
    test_inputs = feeder.inputs("test") if has_test and cfg.train.eval_test_each_epoch else None
    monitor, mode = _monitor(cfg, has_val)
    fit_kwargs = feeder.inputs("train", training=True)
    if has_val:
        val = feeder.inputs("val")
        fit_kwargs["validation_data"] = (val["x"], val["y"]) if "y" in val else val["x"]
        if "batch_size" in val:
            fit_kwargs["validation_batch_size"] = val["batch_size"]
    first, total = cfg.train.epochs, cfg.train.epochs + cfg.train.finetune_epochs

    def log():
        return _history_log(keeper.history.rows)

    def run_phase(phase, start, end, **compile_kwargs):
        compile_model(fit_model, cfg, steps, **compile_kwargs)
        keeper.restore(fit_model, phase)
        callbacks = keeper.guard(
            _callbacks(cfg, keeper, monitor, mode, test_inputs, feeder.checkpoint, phase_start=start),
            phase, end, steps,
        )
        _fit(fit_model, fit_kwargs, callbacks, max(start, keeper.next_epoch), end, verbose)

    try:
        with keeper.stopping():
            if keeper.next_epoch < first:
                run_phase(1, 0, first)
            if cfg.train.finetune_epochs and log().get(monitor) and keeper.next_epoch < total:
                from dataclasses import replace

                from kerasclf.models.freeze import apply_trainable

                prepared.summary["finetune"] = apply_trainable(model, cfg.train.finetune_trainable)
                optim = replace(cfg.optim, lr=cfg.optim.lr * cfg.train.finetune_lr_factor, warmup_epochs=0.0)
                run_phase(2, first, total, optim=optim, epochs=cfg.train.finetune_epochs)
    except RunStopped as stop:
        _write_json(run_dir / "metrics.json", _metrics(prepared.summary, keeper, log(), monitor, feeder, stop))
        raise
    metrics = _metrics(prepared.summary, keeper, log(), monitor, feeder)
    if has_test and (run_dir / "best.keras").exists():
        metrics["test_accuracy"] = _test_accuracy(run_dir / "best.keras", data.test, cfg.data.batch_size)
    _write_json(run_dir / "metrics.json", metrics)
    if cfg.train.evaluate_after and (run_dir / "best.keras").exists():
        metrics["report_path"] = _evaluate_after(run_dir, data, "test" if has_test else "val")
    return run_dir, metrics


def _history_log(rows):
    """History rows -> {column: [values]} (every epoch of the run, earlier sessions included)."""
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k != "epoch"]
    return {k: [row[k] for row in rows if k in row] for k in keys}


def _metrics(summary, keeper, log, monitor, feeder, stop=None):
    """metrics.json: `stopped` names why a run ended early (null when it finished)."""
    from kerasclf.errors import RunInterrupted

    metrics = _run_metrics(summary, log, monitor, keeper.wall_seconds(), stop is not None)
    metrics["data_on_device"] = feeder.resident
    metrics["stopped"] = None if stop is None else (
        {2: "SIGINT", 15: "SIGTERM"}.get(stop.signum, "signal") if isinstance(stop, RunInterrupted) else "non-finite loss"
    )
    metrics["sessions"] = keeper.sessions
    metrics["resumed_from_epoch"] = keeper.resumed_from
    return metrics


def _evaluate_after(run_dir, data, split):
    """Reports for the best checkpoint on the data already in memory; a failure keeps the run."""
    from kerasclf.errors import KerasclfError
    from kerasclf.evaluation.evaluate import evaluate_checkpoint

    try:
        return evaluate_checkpoint(run_dir / "best.keras", split=split, dataset=data)["report_path"]
    except KerasclfError as exc:
        warnings.warn(f"Evaluation after training failed (the run is kept): {exc}")
        return None


def _run_metrics(summary, log, monitor, wall, interrupted):
    values = log.get(monitor, [])
    best = (min if "loss" in monitor else max)(range(len(values)), key=values.__getitem__) if values else None
    return {
        **summary,
        "epochs_run": len(values),
        "monitor": monitor,
        "best_epoch": None if best is None else best + 1,
        "best_val_accuracy": None if best is None or "val_accuracy" not in log else float(log["val_accuracy"][best]),
        "final_train_accuracy": float(log["accuracy"][-1]) if log.get("accuracy") else None,
        "test_accuracy": None,
        "wall_seconds": round(wall, 2),
        "seconds_per_epoch": round(wall / len(values), 2) if values else None,
        "interrupted": interrupted,
    }


def _test_accuracy(checkpoint, split, batch_size):
    from kerasclf.evaluation.evaluate import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    probs = model.predict(split.x, batch_size=batch_size, verbose=0)
    return float((probs.argmax(-1) == split.y).mean())


def _write_json(path, obj):
    from kerasclf.atomic import write_json

    write_json(path, obj, default=float)
