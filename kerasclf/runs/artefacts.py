"""Callbacks that write the run's artefacts so that a kill at any moment leaves readable files.

- AtomicModelCheckpoint: keras.callbacks.ModelCheckpoint, but each save goes to a temporary
  file that replaces best.keras / last.keras only once complete (Keras writes the file in
  place, so a kill mid-save left a truncated best.keras and no previous best).
- HistoryCSV: replaces keras.callbacks.CSVLogger, which appends to a file it keeps open:
  a kill mid-write leaves a torn last row, and a resumed run could not drop the row of an
  epoch it has to run again. Here the rows live in memory (and in the resume state) and
  history.csv is rewritten atomically after every epoch; files stay small (a row per epoch).
- ContinuingTensorBoard: keras.callbacks.TensorBoard whose batch-level steps continue where
  the previous fit stopped (Keras restarts them at 0 in every fit: the fine-tuning phase and
  a resumed run would draw over earlier steps), that records every epoch's summaries (see
  on_epoch_end), and whose event files are flushed at every epoch end so the resume state
  can record how much of each file belongs to finished epochs. A study reads at a glance:
  epoch scalars keep Keras's names (epoch_loss, epoch_accuracy, train and validation runs
  overlaid) but at history.csv's epoch numbers (1..N, Keras writes 0..N-1); per-batch
  scalars are under per_step/ (Keras's batch_* sorted first, before the epoch curves); the
  epoch time and system figures are under system/ (not "epoch_epoch_seconds"); Keras's
  evaluation_*_vs_iterations copies of the validation scalars are not written.
"""

import csv
import io
from pathlib import Path

import keras

from kerasclf.keras_private import set_tensorboard_train_step, tensorboard_train_step, tensorboard_writers
from kerasclf.runs.atomic import atomic_path, write_text


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        with atomic_path(filepath) as tmp:
            if self.save_weights_only:
                self.model.save_weights(str(tmp), overwrite=True)
            else:
                self.model.save(str(tmp), overwrite=True)


def _cell(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def history_text(rows):
    """CSV text of `rows` (dicts with a 0-based "epoch" key): epoch first, numbered from 1 like
    the console and metrics.json's best_epoch, then every other key sorted; a key an epoch
    lacks is written "NA", as CSVLogger does."""
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row in rows:
        writer.writerow([int(row["epoch"]) + 1, *(row.get(k, "NA") for k in keys)])
    return out.getvalue()


class HistoryCSV(keras.callbacks.Callback):
    def __init__(self, path, rows=()):
        super().__init__()
        self.path = Path(path)
        self.rows = [dict(row) for row in rows]

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": int(epoch), **{k: _cell(v) for k, v in (logs or {}).items()}})
        self.write()

    def write(self):
        write_text(self.path, history_text(self.rows))


SYSTEM_KEYS = {"epoch_seconds": "seconds_per_epoch"}  # + sys_<name> -> system/<name>


class ContinuingTensorBoard(keras.callbacks.TensorBoard):
    def __init__(self, log_dir, start_batch=0, confusion_image=None, **kwargs):
        """confusion_image: optional () -> uint8 (H, W, 3) image of the validation confusion
        matrix, written at each epoch end as epoch_confusion_matrix in the validation run."""
        super().__init__(log_dir, **kwargs)
        self.start_batch = int(start_batch)
        self.confusion_image = confusion_image

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        set_tensorboard_train_step(self, self.start_batch)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, None)  # the graph and profiler: Keras's; the scalars: below
        for name, value in (logs if isinstance(logs, dict) else {}).items():
            self.summary.scalar(f"per_step/{name}", value, step=tensorboard_train_step(self))

    def _log_epoch_metrics(self, epoch, logs):
        """Keras's epoch scalars at step epoch + 1 (history.csv's numbering); system figures apart."""
        logs = dict(logs or {})
        system = {k: logs.pop(k) for k in list(logs) if k in SYSTEM_KEYS or k.startswith("sys_")}
        super()._log_epoch_metrics(epoch + 1, logs)
        if system:
            with self._train_writer.as_default():
                for name, value in system.items():
                    self.summary.scalar(f"system/{SYSTEM_KEYS.get(name, name[4:])}", value, step=epoch + 1)

    # Keras leaves the last batch's `record_if(step % update_freq == 0)` in force when the epoch
    # ends, which silently drops the epoch summaries (and the validation ones) of every epoch
    # whose batch count is not a multiple of update_freq: they are always recorded here.
    def on_epoch_end(self, epoch, logs=None):
        with self.summary.record_if(True):
            super().on_epoch_end(epoch, logs)
            if self.confusion_image is not None:
                with self._val_writer.as_default():  # self.summary: tf.summary (the callback needs TensorFlow)
                    self.summary.image("epoch_confusion_matrix", self.confusion_image()[None], step=epoch + 1)
        for writer in tensorboard_writers(self):
            writer.flush()

    def on_test_end(self, logs=None):
        self._pop_writer()  # Keras also writes evaluation_*_vs_iterations here: the epoch_* scalars again

    @property
    def batches_done(self):
        """Batch-level steps written so far (the next fit's start_batch)."""
        return tensorboard_train_step(self)
