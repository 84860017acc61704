"""Optimizers by name: sgd (plain / momentum / Nesterov), adam (betas), adamw."""

import keras

from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.training.schedules import build_schedule

OPTIMIZERS = ("sgd", "adam", "adamw")


def build_optimizer(optim, steps_per_epoch, epochs):
    lr = build_schedule(optim, steps_per_epoch, epochs)
    common = {"learning_rate": lr, "clipnorm": optim.clipnorm}
    if optim.name == "sgd":
        return keras.optimizers.SGD(
            momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay or None, **common
        )
    if optim.name == "adam":
        return keras.optimizers.Adam(
            beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or None, **common
        )
    if optim.name == "adamw":
        return keras.optimizers.AdamW(
            beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or 0.004, **common
        )
    raise ConfigError(
        f"Unknown optim.name {optim.name!r}.{did_you_mean(optim.name, OPTIMIZERS)} Choose one of {', '.join(OPTIMIZERS)}."
    )


def current_lr(optimizer):
    """The learning rate in effect now (schedules evaluated at the optimizer's step)."""
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
