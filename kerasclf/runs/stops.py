"""Stopping a run cleanly: on a non-finite loss, and on Ctrl-C / SIGTERM.

Both stop by raising out of `fit` at a batch boundary, so that the epoch in progress is
not recorded: Keras's own way (`model.stop_training = True`, as TerminateOnNaN does) still
runs the epoch-end callbacks, which would save NaN weights as last.keras and log a partial
epoch as if it had finished. What the run keeps is what its finished epochs saved (the
checkpoints, history.csv and the resume state), and a resumed run starts the interrupted
epoch again from its beginning.
"""

import contextlib
import math
import signal
import sys
import threading

import keras

from kerasclf.errors import NonFiniteLoss

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class StopOnNonFinite(keras.callbacks.Callback):
    """keras.callbacks.TerminateOnNaN's check, raising NonFiniteLoss that names epoch and step.

    The batch `loss` Keras reports is the epoch's running mean, so it turns NaN/Inf at the
    first bad batch. With train.steps_per_execution = N > 1, Keras runs N batches in one call
    and reports once after them (`on_train_batch_begin` gets the group's first step,
    `on_train_batch_end` its last): the message then names the group, since which of its
    steps went bad first is not known outside the compiled call.
    Put it first in the callback list, so no epoch-end callback sees the bad epoch.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0
        self.first_step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.first_step = batch

    def on_train_batch_end(self, batch, logs=None):
        last = min(batch, self.steps_per_epoch - 1) if self.steps_per_epoch else batch
        if last > self.first_step:
            where = (f"in steps {self.first_step + 1}-{last + 1} of {self.steps_per_epoch} (one call of "
                     "train.steps_per_execution steps: which of them went bad first is not known)")
        else:
            where = f"step {last + 1} of {self.steps_per_epoch}"
        self._check((logs or {}).get("loss"), where)

    def on_epoch_end(self, epoch, logs=None):
        self._check((logs or {}).get("loss"), "the end of the epoch")

    def _check(self, loss, where):
        if loss is None:
            return
        value = float(keras.ops.convert_to_numpy(loss))
        if math.isfinite(value):
            return
        raise NonFiniteLoss(
            f"The training loss became {value} at epoch {self.epoch + 1}, {where}; training stopped there. "
            f"{CAUSES}"
        )


CAUSES = (
    "Usual causes: a learning rate too high for this model and batch size (lower optim.lr, add "
    "optim.warmup_epochs or optim.clipnorm); inputs that are not what the model expects (check the "
    "data); mixed_float16 overflowing (try train.mixed_precision=mixed_bfloat16 or null)."
)


class StopRequest:
    """Set by the signal handler; read by StopOnSignal at the next batch or epoch boundary."""

    signum = None


class StopOnSignal(keras.callbacks.Callback):
    """Raises `make_error(signum)` at the first batch/epoch boundary after a stop request.

    Last in the callback list, so an epoch whose end was reached is saved before it raises.
    It checks at batch *begin* (the previous step has finished): Keras dispatches batch-end
    hooks asynchronously only when no callback overrides them, and this one reads no logs.
    """

    def __init__(self, request, make_error):
        super().__init__()
        self.request, self.make_error = request, make_error

    def _maybe_stop(self, *args, **kwargs):
        if self.request.signum is not None:
            raise self.make_error(self.request.signum)

    on_train_batch_begin = on_test_batch_begin = on_epoch_begin = on_epoch_end = _maybe_stop


@contextlib.contextmanager
def graceful_signals(request):
    """While inside: SIGINT / SIGTERM set `request.signum` (the run stops at the next step
    boundary); a second signal stops at once with KeyboardInterrupt. Handlers can only be
    installed from the main thread; elsewhere signals keep their default behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum
        print(
            f"\n{SIGNAL_NAMES.get(signum, signum)} received: stopping after the current step "
            "(send it again to stop at once).",
            file=sys.stderr, flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in SIGNAL_NAMES}
    try:
        yield request
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
