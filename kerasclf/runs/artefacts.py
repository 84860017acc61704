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
  can record how much of each file belongs to finished epochs.
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


class ContinuingTensorBoard(keras.callbacks.TensorBoard):
    def __init__(self, log_dir, start_batch=0, **kwargs):
        super().__init__(log_dir, **kwargs)
        self.start_batch = int(start_batch)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        set_tensorboard_train_step(self, self.start_batch)

    # Keras leaves the last batch's `record_if(step % update_freq == 0)` in force when the epoch
    # ends, which silently drops the epoch summaries (and the validation ones) of every epoch
    # whose batch count is not a multiple of update_freq: they are always recorded here.
    def on_epoch_end(self, epoch, logs=None):
        with self.summary.record_if(True):
            super().on_epoch_end(epoch, logs)
        for writer in tensorboard_writers(self):
            writer.flush()

    def on_test_end(self, logs=None):
        with self.summary.record_if(True):
            super().on_test_end(logs)

    @property
    def batches_done(self):
        """Batch-level steps written so far (the next fit's start_batch)."""
        return tensorboard_train_step(self)
