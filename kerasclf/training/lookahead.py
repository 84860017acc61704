"""Lookahead with a scheduled decay (airbench94's `LookaheadState`), inside the optimizer step.

Every `every` steps the optimizer pulls a slow copy of the weights towards the fast ones,
    slow = d * slow + (1 - d) * fast,   d = decay * (step / total_steps) ** power,
and resets the fast weights to it; on the last step as well, so the trained model ends
on the slow weights. `d` grows from 0 (plain training early on) to `decay` at the end
(airbench94: decay 0.95**5, power 3, every 5 steps).

Why not a callback: under JAX the weights live in the compiled step's state during an
epoch, so a per-step callback would have to sync them to the host and back. Keras's own
optimizer EMA (`use_ema`, `ema_overwrite_frequency`) runs inside the step on every
backend but has a constant momentum and averages on every step; this overrides its one
averaging method and keeps the rest (the average variables, the final overwrite in
`finalize_variable_values`). Like Keras's EMA it covers trainable variables; airbench's
state-dict copy also averages BatchNorm's moving statistics, which this does not.
"""

import keras
from keras import ops


class _LookaheadMixin:
    def __init__(self, *args, lookahead_every=5, lookahead_decay=0.95**5, lookahead_power=3.0, total_steps=1, **kwargs):
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency"):  # ours, from get_config
            kwargs.pop(key, None)
        super().__init__(*args, use_ema=True, ema_momentum=0.0, ema_overwrite_frequency=None, **kwargs)
        if int(lookahead_every) < 1:
            raise ValueError(f"lookahead_every must be >= 1, got {lookahead_every}.")
        if not 0.0 <= float(lookahead_decay) <= 1.0:
            raise ValueError(f"lookahead_decay must be in [0, 1], got {lookahead_decay}.")
        self.lookahead_every = int(lookahead_every)
        self.lookahead_decay = float(lookahead_decay)
        self.lookahead_power = float(lookahead_power)
        self.total_steps = max(int(total_steps), 1)

    def lookahead_factor(self, step):
        """d at (1-based) `step`: the weight of the slow weights in the average."""
        fraction = ops.minimum(ops.cast(step, "float32") / float(self.total_steps), 1.0)
        return self.lookahead_decay * fraction**self.lookahead_power

    def _update_model_variables_moving_average(self, trainable_variables):
        # Called once per step after the update, with `iterations` not yet incremented.
        step = self.iterations + 1
        first = ops.equal(self.iterations, 0)  # start the slow weights at the fast ones
        sync = first | ops.equal(step % self.lookahead_every, 0) | (step >= self.total_steps)
        d = ops.where(first, 0.0, self.lookahead_factor(step))
        for var, slow in zip(trainable_variables, self._model_variables_moving_average):
            if slow is None:
                continue
            weight = ops.cast(d, var.dtype)
            fast_value, slow_value = var.value, slow.value  # tensors: JAX's where takes no Variables
            averaged = weight * slow_value + (1.0 - weight) * fast_value
            slow.assign(ops.where(sync, averaged, slow_value))
            var.assign(ops.where(sync, averaged, fast_value))

    def get_config(self):
        return {
            **super().get_config(),
            "lookahead_every": self.lookahead_every,
            "lookahead_decay": self.lookahead_decay,
            "lookahead_power": self.lookahead_power,
            "total_steps": self.total_steps,
        }


@keras.saving.register_keras_serializable(package="kerasclf")
class LookaheadSGD(_LookaheadMixin, keras.optimizers.SGD):
    pass


@keras.saving.register_keras_serializable(package="kerasclf")
class LookaheadAdam(_LookaheadMixin, keras.optimizers.Adam):
    pass


@keras.saving.register_keras_serializable(package="kerasclf")
class LookaheadAdamW(_LookaheadMixin, keras.optimizers.AdamW):
    pass


LOOKAHEAD = {keras.optimizers.SGD: LookaheadSGD, keras.optimizers.Adam: LookaheadAdam, keras.optimizers.AdamW: LookaheadAdamW}
