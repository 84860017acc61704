"""A TensorBoard HParams summary of compared runs, so a study shows in TensorBoard's HParams tab.

Layout (what the HParams plugin expects): <dir>/ holds the experiment config (hyperparameters
with their domains, metrics); <dir>/<run>/ holds that run's hyperparameter values and its
final metrics as scalars. Written only when TensorFlow and TensorBoard are installed.
"""

import importlib.util
import shutil
from pathlib import Path

METRICS = (
    ("best_val_accuracy", "best validation accuracy"),
    ("test_accuracy", "test accuracy"),
    ("wall_seconds", "wall time (s)"),
    ("seconds_per_epoch", "seconds per epoch"),
    ("params_trainable", "trainable parameters"),
)


def available():
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))


def _scalar(value):
    """HParams values must be bool, int, float or str."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


def hparam_values(runs, keys):
    """[{key: value}] per run: the varying config keys plus the model name."""
    from kerasclf.evaluation.compare import flatten

    out = []
    for run in runs:
        flat = flatten(run.config)
        values = {"model": _scalar(run.metrics.get("model") or flat.get("model.name"))}
        values.update({k: _scalar(flat.get(k)) for k in keys})
        out.append(values)
    # a key holding ints in some runs and floats in others is one float hyperparameter
    for key in {k for v in out for k in v}:
        kinds = {type(v[key]) for v in out}
        if kinds == {int, float}:
            for v in out:
                v[key] = float(v[key])
    return out


def write_hparams(runs, labels, keys, out_dir):
    """Write the summary into out_dir (replacing an earlier one); returns out_dir, or None without TensorBoard."""
    if not available():
        return None
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    out = Path(out_dir)
    if out.is_dir() and all("tfevents" in p.name for p in out.rglob("*") if p.is_file()):
        shutil.rmtree(out)  # our own earlier summary: sessions would otherwise be listed twice
    values = hparam_values(runs, keys)
    params = []
    for key in values[0] if values else []:
        domain_values = sorted({v[key] for v in values}, key=str)
        kinds = {type(v) for v in domain_values}
        domain = hp.Discrete(domain_values) if len(kinds) == 1 else None  # mixed types: no domain
        params.append(hp.HParam(key, domain))
    with tf.summary.create_file_writer(str(out)).as_default():
        hp.hparams_config(hparams=params, metrics=[hp.Metric(tag, display_name=name) for tag, name in METRICS])
    by_name = {p.name: p for p in params}
    for run, label, run_values in zip(runs, labels, values):
        if run.state != "finished":
            continue
        with tf.summary.create_file_writer(str(out / label)).as_default():
            hp.hparams({by_name[k]: v for k, v in run_values.items()}, trial_id=label)
            step = int(run.metrics.get("epochs_run") or 0)
            for tag, _ in METRICS:
                if run.metrics.get(tag) is not None:
                    tf.summary.scalar(tag, float(run.metrics[tag]), step=step)
    return str(out)
