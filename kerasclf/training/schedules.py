"""Learning-rate schedules by name (`optim.schedule`): constant, step, cosine (Keras's own), onecycle.

A schedule is registered as `fn(optim_cfg, steps) -> float or LearningRateSchedule`, with
`steps` a `Steps` (per_epoch, total, warmup: optimizer steps). Keras has no one-cycle or constant-with-warmup schedule, so
`WarmupSchedule` provides both in a few lines of keras.ops; it is registered so checkpoints
load with safe_mode=True.
"""

from dataclasses import dataclass
from typing import Union

import keras
from keras import ops

from kerasclf.config import OptimConfig
from kerasclf.registry import SCHEDULES

register_schedule = SCHEDULES.register


@dataclass(frozen=True)
class Steps:
    per_epoch: int
    total: int
    warmup: int


@keras.saving.register_keras_serializable(package="kerasclf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from peak*start_fraction to peak, then constant (decay="none") or a linear
    decay to peak*end_fraction (decay="linear"). Cosine decay is Keras's own CosineDecay."""

    def __init__(self, peak, total_steps, warmup_steps=0, decay="none", start_fraction=0.0, end_fraction=0.0):
        if decay not in ("none", "linear"):
            raise ValueError(f"WarmupSchedule decay must be 'none' or 'linear', got {decay!r}")
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
        down = 1.0 - (1.0 - self.end_fraction) * t if self.decay == "linear" else ops.ones_like(t)
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


@register_schedule("constant", description="optim.lr throughout (with optim.warmup_epochs: linear warm-up first)")
def constant(optim, steps):
    if steps.warmup == 0:
        return optim.lr
    return WarmupSchedule(optim.lr, steps.total, steps.warmup, start_fraction=optim.start_lr_fraction or 0.0)


@register_schedule("step", description="x optim.gamma every optim.step_epochs epochs")
def step(optim, steps):
    return keras.optimizers.schedules.ExponentialDecay(
        optim.lr, decay_steps=max(optim.step_epochs * steps.per_epoch, 1), decay_rate=optim.gamma, staircase=True
    )


@register_schedule("cosine", description="cosine decay to optim.min_lr_fraction x lr, after optional warm-up")
def cosine(optim, steps):
    return keras.optimizers.schedules.CosineDecay(
        0.0 if steps.warmup else optim.lr,
        decay_steps=max(steps.total - steps.warmup, 1),
        alpha=optim.min_lr_fraction,
        warmup_target=optim.lr if steps.warmup else None,
        warmup_steps=steps.warmup,
    )


@register_schedule("onecycle", description="linear warm-up (default 25% of training) then linear decay")
def onecycle(optim, steps):
    # Default warm-up: the first 25% of training, as in one-cycle / airbench recipes.
    warmup = steps.warmup or int(0.25 * steps.total)
    return WarmupSchedule(
        optim.lr, steps.total, warmup, decay="linear",
        start_fraction=0.04 if optim.start_lr_fraction is None else optim.start_lr_fraction,
        end_fraction=optim.min_lr_fraction,
    )


def build_schedule(
    optim: OptimConfig, steps_per_epoch: int, epochs: float
) -> Union[float, keras.optimizers.schedules.LearningRateSchedule]:
    """A float or a LearningRateSchedule for `optim.schedule`."""
    steps = Steps(
        per_epoch=steps_per_epoch,
        total=max(int(steps_per_epoch * epochs), 1),
        warmup=int(round(optim.warmup_epochs * steps_per_epoch)),
    )
    return SCHEDULES.get(optim.schedule).factory(optim, steps)
