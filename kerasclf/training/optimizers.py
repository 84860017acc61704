"""Optimizers by name (`optim.name`), Keras's own, each a registered factory.

A factory is `fn(optim_cfg, learning_rate) -> keras.optimizers.Optimizer`, where
`learning_rate` is a float or the schedule built from `optim.schedule`.
"""

import keras

from kerasclf.config import OptimConfig
from kerasclf.registry import OPTIMIZERS
from kerasclf.training.lookahead import LOOKAHEAD  # also registers the Lookahead classes for loading
from kerasclf.training.schedules import build_schedule

register_optimizer = OPTIMIZERS.register


def _common(optim, learning_rate):
    return {"learning_rate": learning_rate, "clipnorm": optim.clipnorm}


@register_optimizer("sgd", description="SGD; optim.momentum, optim.nesterov (plain, momentum or Nesterov)")
def sgd(optim, learning_rate):
    return keras.optimizers.SGD(
        momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay or None,
        **_common(optim, learning_rate),
    )


@register_optimizer("adam", description="Adam; optim.beta_1, optim.beta_2 (weight_decay: decoupled, as Keras does)")
def adam(optim, learning_rate):
    return keras.optimizers.Adam(
        beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or None,
        **_common(optim, learning_rate),
    )


@register_optimizer("adamw", description="AdamW (weight_decay default 0.004 when 0)")
def adamw(optim, learning_rate):
    return keras.optimizers.AdamW(
        beta_1=optim.beta_1, beta_2=optim.beta_2, weight_decay=optim.weight_decay or 0.004,
        **_common(optim, learning_rate),
    )


def build_optimizer(optim: OptimConfig, steps_per_epoch: int, epochs: float) -> keras.optimizers.Optimizer:
    learning_rate = build_schedule(optim, steps_per_epoch, epochs)
    optimizer = OPTIMIZERS.get(optim.name).factory(optim, learning_rate)
    if optim.lookahead_every:
        optimizer = with_lookahead(optimizer, optim, total_steps=steps_per_epoch * epochs)
    return optimizer


def with_lookahead(optimizer, optim, total_steps):
    """The same optimizer (same settings and schedule) as its Lookahead variant."""
    config = optimizer.get_config()
    config.update(
        lookahead_every=optim.lookahead_every, lookahead_decay=optim.lookahead_decay,
        lookahead_power=optim.lookahead_power, total_steps=total_steps,
    )
    return LOOKAHEAD[type(optimizer)].from_config(config)


def current_lr(optimizer):
    """The learning rate in effect now (schedules evaluated at the optimizer's step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
