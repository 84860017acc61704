"""One training run: config -> data -> model -> fit with callbacks -> logs/<run>/.

The run directory holds the resolved config, history.csv, TensorBoard events, best.keras,
last.keras and metrics.json; evaluation reports go to eval/<split>/.
"""

import json
import math
import time
import warnings
from pathlib import Path

from kerasclf.config import dump_config, label_format
from kerasclf.training.assemble import prepare


def _mixing_fn(cfg):
    if not (cfg.augment.mixup or cfg.augment.cutmix):
        return None
    from kerasclf.layers.mixing import batch_mixer

    return batch_mixer(cfg.augment.mixup, cfg.augment.cutmix, seed=cfg.seed)


def compile_model(model, cfg, steps_per_epoch, optim=None, epochs=None):
    """Compile with the configured loss (kerasclf.losses) and optimizer (kerasclf.training.optimizers);
    `optim`/`epochs` override for a fine-tuning phase."""
    from kerasclf.layers.jit import warn_if_not_jit
    from kerasclf.losses import build_loss
    from kerasclf.training.optimizers import build_optimizer

    optimizer = build_optimizer(optim or cfg.optim, steps_per_epoch, epochs or cfg.train.epochs)
    loss, _ = build_loss(cfg)
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


def _callbacks(cfg, run_dir, monitor, mode, test_inputs, checkpoint_cls, best_so_far=None, keep_best=True):
    """The run's callbacks; a second (fine-tuning) phase appends to the CSV and only replaces
    best.keras when it beats `best_so_far`. keep_best=False: no best.keras (see _keeps_best)."""
    import keras

    from kerasclf.backend import have_tensorboard
    from kerasclf.training.callbacks import EpochCSVLogger, LearningRateLogger, SystemMonitor, TestAccuracy
    from kerasclf.training.epoch_hooks import EpochHooks

    callbacks = [EpochHooks(), LearningRateLogger(), SystemMonitor()]
    if test_inputs is not None:
        callbacks.append(TestAccuracy(test_inputs))
    if keep_best:
        callbacks.append(checkpoint_cls(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True,
            initial_value_threshold=best_so_far,
        ))
    callbacks += [
        checkpoint_cls(str(run_dir / "last.keras")),
        EpochCSVLogger(str(run_dir / "history.csv"), append=best_so_far is not None),
    ]
    if have_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), update_freq=10, write_graph=False))
    if cfg.train.early_stop_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=cfg.train.early_stop_patience)
        )
    return callbacks


def _fit(fit_model, fit_kwargs, callbacks, initial_epoch, epochs, verbose):
    """model.fit; Ctrl-C stops it but keeps what the finished epochs wrote."""
    from kerasclf.training.progress import fit_verbosity

    verbose, progress = fit_verbosity(verbose)  # "auto": one line per epoch unless stdout is a terminal
    try:
        return fit_model.fit(
            initial_epoch=initial_epoch, epochs=epochs, callbacks=callbacks + progress, verbose=verbose, **fit_kwargs
        ).history, False
    except KeyboardInterrupt:
        warnings.warn("Training interrupted; the run directory keeps the finished epochs.")
        return (fit_model.history.history if fit_model.history else {}), True


def train(cfg, verbose=None):
    """Train per `cfg`; returns (run_dir, metrics).

    With train.finetune_epochs > 0, a second phase follows: the model is re-frozen to
    train.finetune_trainable and trained on with the learning rate times
    train.finetune_lr_factor (the Keras transfer-learning guide's two-phase recipe).
    """
    prepared = prepare(cfg)  # first: it checks log_dir and imports TensorFlow quietly
    from kerasclf.data.provenance import write_splits
    from kerasclf.training.feeding import choose_feeder
    from kerasclf.training.gradient_flow import gradient_flow_callbacks
    from kerasclf.training.rundir import make_run_dir

    data, model = prepared.data, prepared.model
    feeder = choose_feeder(cfg, data, label_format(cfg) == "one_hot", _mixing_fn(cfg))
    run_dir = make_run_dir(cfg.train.log_dir, cfg.name, cfg.data.source, cfg.model.name, cfg.train.run_name)
    dump_config(cfg, run_dir / "config.yaml")
    write_splits(run_dir, cfg, data)  # which images are train/val/test, for `kerasclf evaluate`
    has_val = data.val is not None and len(data.val) > 0
    has_test = data.test is not None and len(data.test) > 0
    steps = math.ceil(len(data.train) / cfg.data.batch_size)
    verbose = cfg.train.verbose if verbose is None else verbose
    from kerasclf.training import aux_loss

    aux = aux_loss.setup(cfg, model, data)  # CE + loss.aux_weight * triplet/center on the embedding
    fit_model = feeder.model_to_fit(model) if aux is None else aux.fit_model(feeder.model_to_fit)
    checkpoint_cls = feeder.checkpoint if aux is None else aux.checkpoint_class()
    prepared.summary["aux_loss"] = aux_loss.aux_name(cfg)
    compile_model(fit_model, cfg, steps)
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
    started = time.perf_counter()
    callbacks = _callbacks(cfg, run_dir, monitor, mode, test_inputs, checkpoint_cls, keep_best=keep_best)
    callbacks += gradient_flow_callbacks(cfg, model, data, run_dir)
    log, interrupted = _fit(fit_model, fit_kwargs, callbacks, 0, cfg.train.epochs, verbose)
    if cfg.train.finetune_epochs and not interrupted and log.get(monitor):
        from dataclasses import replace

        from kerasclf.models.freeze import apply_trainable

        prepared.summary["finetune"] = apply_trainable(model, cfg.train.finetune_trainable)
        optim = replace(cfg.optim, lr=cfg.optim.lr * cfg.train.finetune_lr_factor, warmup_epochs=0.0)
        compile_model(fit_model, cfg, steps, optim=optim, epochs=cfg.train.finetune_epochs)
        best = (min if mode == "min" else max)(log[monitor])
        callbacks = _callbacks(
            cfg, run_dir, monitor, mode, test_inputs, checkpoint_cls, best_so_far=best, keep_best=keep_best
        )
        callbacks += gradient_flow_callbacks(cfg, model, data, run_dir, start_epoch=cfg.train.epochs)
        total = cfg.train.epochs + cfg.train.finetune_epochs
        log2, interrupted = _fit(fit_model, fit_kwargs, callbacks, cfg.train.epochs, total, verbose)
        log = {k: list(v) + list(log2.get(k, [])) for k, v in log.items()}
    wall = time.perf_counter() - started
    metrics = _run_metrics(prepared.summary, log, monitor, wall, interrupted)
    metrics["data_on_device"] = feeder.resident
    metrics["checkpoint"] = checkpoint_name
    if not keep_best:
        metrics["best_epoch"] = None  # no epoch was chosen: last.keras is the final one
    if has_test and (run_dir / checkpoint_name).exists():
        metrics["test_accuracy"] = _test_accuracy(run_dir / checkpoint_name, data.test, cfg.data.batch_size)
    _write_json(run_dir / "metrics.json", metrics)
    if cfg.train.evaluate_after and (run_dir / checkpoint_name).exists() and (has_test or has_val):
        metrics["report_path"] = _evaluate_after(
            run_dir / checkpoint_name, data, "test" if has_test else "val", embeddings=aux is not None
        )
    return run_dir, metrics


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


def _evaluate_after(checkpoint, data, split, embeddings=False):
    """Reports for the run's checkpoint on the data already in memory; a failure keeps the run.
    `embeddings`: add the embedding report (runs trained with an auxiliary metric loss)."""
    from kerasclf.errors import KerasclfError
    from kerasclf.evaluation.evaluate import evaluate_checkpoint

    try:
        return evaluate_checkpoint(checkpoint, split=split, dataset=data, embeddings=embeddings)["report_path"]
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
    from kerasclf.checkpoint import load_checkpoint
    from kerasclf.data.pipeline import predict_inputs

    model, _ = load_checkpoint(checkpoint)
    probs = model.predict(**predict_inputs(split, batch_size), verbose=0)
    return float((probs.argmax(-1) == split.y).mean())


def _write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, default=float) + "\n")
