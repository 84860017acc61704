"""What the console shows while a model trains: metrics only.

EpochLine: one plain line per epoch (train.verbose: 2, and `auto` when stdout is not a
terminal). Keras's verbose=2 writes two lines per epoch ("Epoch 3/15" then the metrics); a
log file or CI console reads better with one, numbered from 1 like Keras's progress bar,
history.csv and metrics.json's best_epoch.

MetricsProgbar: Keras's progress bar (train.verbose: 1, and `auto` on a terminal) minus the
columns kerasclf's callbacks add to the logs for history.csv and TensorBoard (epoch_seconds,
sys_*) and the learning rate, with short names (acc, val_acc) so that an epoch's line fits
in 120 columns.
"""

import sys

import keras

# Order of the metrics on the line; others follow in the order Keras logged them.
_FIRST = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "learning_rate")
_SKIPPED_PREFIX = "sys_"  # CPU/memory figures: in history.csv and TensorBoard, not on the console
_SKIPPED = ("epoch_seconds",)  # the epoch line prints it as "N.N s"; the progress bar has its own timer
_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc", "test_accuracy": "test_acc"}
_NOT_ON_BAR = ("learning_rate",)  # on the epoch line, in history.csv and curves_lr.png: the bar has no room


def console_metrics(logs):
    """[(name, value)] of the logs worth showing on a progress bar, in _FIRST order, short names."""
    logs = dict(logs or {})
    keys = [k for k in _FIRST if k in logs] + [
        k for k in logs if k not in _FIRST and k not in _SKIPPED and not k.startswith(_SKIPPED_PREFIX)
    ]
    return [(_SHORT.get(k, k), logs[k]) for k in keys if k not in _NOT_ON_BAR]


class MetricsProgbar(keras.callbacks.ProgbarLogger):
    """keras.callbacks.ProgbarLogger showing console_metrics only (fit runs with verbose=0)."""

    def set_params(self, params):
        super().set_params({**params, "verbose": 1})

    def _update_progbar(self, batch, logs=None):
        super()._update_progbar(batch, dict(console_metrics(logs)))

    def _finalize_progbar(self, logs):
        super()._finalize_progbar(dict(console_metrics(logs)))


class EpochLine(keras.callbacks.Callback):
    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stdout
        self.epochs = None

    def set_params(self, params):
        super().set_params(params)
        self.epochs = params.get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = logs.pop("epoch_seconds", None)
        keys = [k for k in _FIRST if k in logs] + [
            k for k in logs if k not in _FIRST and not k.startswith(_SKIPPED_PREFIX)
        ]
        parts = [f"{k} {_number(logs[k])}" for k in keys]
        if seconds is not None:
            parts.append(f"{seconds:.1f} s")
        total = f"/{self.epochs}" if self.epochs else ""
        self.stream.write(f"Epoch {epoch + 1}{total}: {', '.join(parts)}\n")
        self.stream.flush()


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def fit_verbosity(setting, stream=None):
    """(verbose for model.fit, extra callbacks) for train.verbose.

    auto: a progress bar on a terminal, else one line per epoch (a log file or a pipe gets
    no carriage returns or colour codes). 0: silent, 1: Keras's progress bar (MetricsProgbar:
    metrics only), 2: one line
    per epoch, written by kerasclf's EpochLine callback (Keras's own verbose=2 prints two
    lines per epoch: "Epoch i/n" and the metrics).
    """
    stream = stream or sys.stdout
    if setting == "auto":
        setting = 1 if getattr(stream, "isatty", lambda: False)() else 2
    if setting == 2:
        return 0, [EpochLine(stream)]
    if setting == 1:
        return 0, [MetricsProgbar()]
    return setting, []
