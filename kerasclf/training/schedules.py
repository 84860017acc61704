"""Learning-rate schedules by name: constant, step, cosine (Keras's own), onecycle (ours).

Keras has no one-cycle or constant-with-warmup schedule, so `WarmupSchedule` provides both
in a few lines of keras.ops; it is registered so checkpoints load with safe_mode=True.
"""

import keras
from keras import ops

from kerasclf.errors import ConfigError

SCHEDULES = ("constant", "step", "cosine", "onecycle")


@keras.saving.register_keras_serializable(package="kerasclf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from peak*start_fraction to peak, then constant or a linear/cosine decay."""

    def __init__(self, peak, total_steps, warmup_steps=0, decay="none", start_fraction=0.0, end_fraction=0.0):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.start_fraction = float(start_fraction)
        self.end_fraction = float(end_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = max(self.warmup_steps, 1)
        up = self.start_fraction + (1.0 - self.start_fraction) * ops.minimum(step / warm, 1.0)
        rest = max(self.total_steps - self.warmup_steps, 1)
        t = ops.clip((step - self.warmup_steps) / rest, 0.0, 1.0)
        if self.decay == "linear":
            down = 1.0 - (1.0 - self.end_fraction) * t
        elif self.decay == "cosine":
            down = self.end_fraction + (1.0 - self.end_fraction) * 0.5 * (1.0 + ops.cos(3.141592653589793 * t))
        else:
            down = ops.ones_like(t)
        factor = ops.where(step < self.warmup_steps, up, down)
        return self.peak * factor

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "start_fraction": self.start_fraction,
            "end_fraction": self.end_fraction,
        }


def build_schedule(optim, steps_per_epoch, epochs):
    """A float or a LearningRateSchedule for `optim.schedule`."""
    total = max(int(steps_per_epoch * epochs), 1)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    start = getattr(optim, "start_lr_fraction", None)
    if start is not None and not 0.0 <= start <= 1.0:
        raise ConfigError(f"optim.start_lr_fraction must be in [0, 1] or null, got {start!r}.")
    if optim.schedule == "constant":
        return optim.lr if warmup == 0 else WarmupSchedule(optim.lr, total, warmup, start_fraction=start or 0.0)
    if optim.schedule == "step":
        if warmup:
            raise ConfigError("optim.schedule=step does not take warmup_epochs; use cosine or onecycle.")
        return keras.optimizers.schedules.ExponentialDecay(
            optim.lr, decay_steps=max(optim.step_epochs * steps_per_epoch, 1), decay_rate=optim.gamma, staircase=True
        )
    if optim.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else optim.lr,
            decay_steps=max(total - warmup, 1),
            alpha=optim.min_lr_fraction,
            warmup_target=optim.lr if warmup else None,
            warmup_steps=warmup,
        )
    if optim.schedule == "onecycle":
        # Default warm-up: the first 25% of training, as in one-cycle / airbench recipes.
        warmup = warmup or int(0.25 * total)
        return WarmupSchedule(
            optim.lr, total, warmup, decay="linear", start_fraction=0.04 if start is None else start,
            end_fraction=optim.min_lr_fraction,
        )
    from kerasclf.errors import did_you_mean

    raise ConfigError(f"Unknown optim.schedule {optim.schedule!r}.{did_you_mean(optim.schedule, SCHEDULES)} Choose one of {', '.join(SCHEDULES)}.")
