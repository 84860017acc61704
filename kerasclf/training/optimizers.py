"""Optimizers by name: sgd (plain / momentum / Nesterov), adam (betas), adamw."""

import keras

from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.training.schedules import build_schedule

OPTIMIZERS = ("sgd", "adam", "adamw")


def build_optimizer(optim, steps_per_epoch, epochs):
    lr = build_schedule(optim, steps_per_epoch, epochs)
    common = {"learning_rate": lr, "clipnorm": optim.clipnorm}
    make = _maker(optim, steps_per_epoch * epochs)
    if optim.name == "sgd":
        return make(keras.optimizers.SGD,
            momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay or None, **common
        )
    if optim.name == "adam":
        return make(keras.optimizers.Adam,
            beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or None, **common
        )
    if optim.name == "adamw":
        return make(keras.optimizers.AdamW,
            beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or 0.004, **common
        )
    raise ConfigError(
        f"Unknown optim.name {optim.name!r}.{did_you_mean(optim.name, OPTIMIZERS)} Choose one of {', '.join(OPTIMIZERS)}."
    )


def _maker(optim, total_steps):
    """cls, **kwargs -> the optimizer; its Lookahead variant (kerasclf.training.lookahead) when
    optim.lookahead_every > 0."""
    every = getattr(optim, "lookahead_every", 0)
    if not every:
        return lambda cls, **kwargs: cls(**kwargs)
    if every < 0 or not 0 <= optim.lookahead_decay <= 1 or optim.lookahead_power < 0:
        raise ConfigError(
            f"optim.lookahead_every must be >= 0 (0: off), lookahead_decay in [0, 1] and lookahead_power >= 0; "
            f"got {every}, {optim.lookahead_decay}, {optim.lookahead_power}."
        )
    from kerasclf.training.lookahead import LOOKAHEAD

    return lambda cls, **kwargs: LOOKAHEAD[cls](
        lookahead_every=every, lookahead_decay=optim.lookahead_decay, lookahead_power=optim.lookahead_power,
        total_steps=total_steps, **kwargs,
    )


def current_lr(optimizer):
    """The learning rate in effect now (schedules evaluated at the optimizer's step)."""
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
