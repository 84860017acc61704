"""A TensorBoard HParams summary of compared runs, so a study shows in TensorBoard's HParams tab.

Layout (what the HParams plugin expects): <dir>/ holds the experiment config (hyperparameters
with their domains, metrics); <dir>/<run>/ holds that run's hyperparameter values and its
final metrics as scalars. Written with TensorBoard's own protobuf summaries and record
writer, so only the `tensorboard` package is needed: importing TensorFlow would cost a sweep
seconds for a handful of numbers.
"""

import importlib.util
import os
import shutil
import socket
import time
from pathlib import Path

from kerasclf.studies.runs import flatten

METRICS = (
    ("best_val_accuracy", "best validation accuracy"),
    ("test_accuracy", "test accuracy (shown, not for choosing)"),
    ("wall_seconds", "training wall time (s)"),
    ("first_epoch_seconds", "first epoch, with compiling (s)"),
    ("steady_seconds_per_epoch", "steady seconds per epoch"),
    ("params_trainable", "trainable parameters"),
)
# The sessions' single-point metric scalars under one tag group, after the runs' epoch_* curves
# in TensorBoard's scalar list (each bare tag would be a group of its own).
TAG_PREFIX = "hparams/"


def available():
    return importlib.util.find_spec("tensorboard") is not None


def _write(logdir, summaries, step=0):
    """Summary protos -> one event file in logdir, through TensorBoard's record writer on a plain
    file (its EventFileWriter opens files through tf.io.gfile, which imports TensorFlow)."""
    from tensorboard.compat.proto.event_pb2 import Event  # lazy: TensorBoard comes with the tf extra
    from tensorboard.summary.writer.record_writer import RecordWriter

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.kerasclf"
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for summary in summaries:
            writer.write(Event(wall_time=now, step=step, summary=summary).SerializeToString())


def _scalar(value):
    """HParams values must be bool, int, float or str."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


def hparam_values(runs, keys):
    """[{key: value}] per run: the varying config keys plus the model name."""
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
    from tensorboard.plugins.hparams import summary_v2 as hp  # lazy: TensorBoard comes with the tf extra
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

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
    metrics = [hp.Metric(TAG_PREFIX + tag, display_name=name) for tag, name in METRICS]
    _write(out, [hp.hparams_config_pb(hparams=params, metrics=metrics)])
    by_name = {p.name: p for p in params}
    for run, label, run_values in zip(runs, labels, values):
        if run.state != "finished":
            continue
        summaries = [hp.hparams_pb({by_name[k]: v for k, v in run_values.items()}, trial_id=label)]
        summaries += [scalar_pb(TAG_PREFIX + tag, float(run.metrics[tag])) for tag, _ in METRICS
                      if run.metrics.get(tag) is not None]
        _write(out / label, summaries, step=int(run.metrics.get("epochs_run") or 0))
    return str(out)
