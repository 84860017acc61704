"""The learning rate of every schedule, and the first updates of every optimizer, against
closed forms written out here (the schedules' and optimizers' textbook definitions).

The learning rate is read where training reads it: from the optimizer that
`build_optimizer` returns, at the optimizer's step count.
"""

import math

import numpy as np
import pytest

from kerasclf.config import from_dict
from kerasclf.registry import OPTIMIZERS, SCHEDULES

pytestmark = pytest.mark.backend_agnostic

PER_EPOCH, EPOCHS = 10, 6
TOTAL = PER_EPOCH * EPOCHS


def linear(t, start, end, length):
    return start + (end - start) * min(t / length, 1.0)


def constant(t, lr, warmup=0, start=0.0, **_):
    return linear(t, start * lr, lr, warmup) if t < warmup else lr


def step(t, lr, gamma, step_epochs, **_):
    return lr * gamma ** math.floor(t / (step_epochs * PER_EPOCH))


def cosine(t, lr, warmup=0, floor=0.0, **_):
    if t < warmup:
        return linear(t, 0.0, lr, warmup)
    length = TOTAL - warmup
    progress = min(t - warmup, length) / length
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def onecycle(t, lr, warmup=None, start=0.04, floor=0.0, **_):
    warmup = int(0.25 * TOTAL) if not warmup else warmup  # one-cycle's usual first quarter
    if t < warmup:
        return linear(t, start * lr, lr, warmup)
    return linear(t - warmup, lr, floor * lr, TOTAL - warmup)


# schedule -> (its closed form, the optim settings to try, each with the form's arguments)
CASES = {
    "constant": (constant, [
        ({}, {}),
        ({"warmup_epochs": 2}, {"warmup": 2 * PER_EPOCH}),
        ({"warmup_epochs": 1, "start_lr_fraction": 0.5}, {"warmup": PER_EPOCH, "start": 0.5}),
    ]),
    "step": (step, [
        ({"step_epochs": 2, "gamma": 0.5}, {"step_epochs": 2, "gamma": 0.5}),
        ({"step_epochs": 1, "gamma": 0.1}, {"step_epochs": 1, "gamma": 0.1}),
    ]),
    "cosine": (cosine, [
        ({}, {}),
        ({"min_lr_fraction": 0.1}, {"floor": 0.1}),
        ({"warmup_epochs": 1, "min_lr_fraction": 0.2}, {"warmup": PER_EPOCH, "floor": 0.2}),
    ]),
    "onecycle": (onecycle, [
        ({}, {}),
        ({"warmup_epochs": 2, "start_lr_fraction": 0.2, "min_lr_fraction": 0.05},
         {"warmup": 2 * PER_EPOCH, "start": 0.2, "floor": 0.05}),
    ]),
}


def test_every_schedule_has_a_closed_form_here():
    assert set(SCHEDULES.names()) <= set(CASES), "write the new schedule's learning rate out in CASES"


def learning_rates(optim_keys, steps):
    import keras

    from kerasclf.training.optimizers import build_optimizer, current_lr

    cfg = from_dict({"optim": {"name": "sgd", **optim_keys}, "train": {"epochs": EPOCHS}})
    optimizer = build_optimizer(cfg.optim, steps_per_epoch=PER_EPOCH, epochs=EPOCHS)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    rates = []
    for t in steps:
        optimizer.iterations.assign(t)
        rates.append(current_lr(optimizer))
    return rates


@pytest.mark.parametrize(
    "schedule, keys, form_args, form",
    [(name, keys, args, form) for name, (form, cases) in CASES.items() for keys, args in cases],
    ids=[f"{name}-{i}" for name, (_, cases) in CASES.items() for i in range(len(cases))],
)
def test_learning_rate_at_every_step_is_the_closed_form(schedule, keys, form_args, form):
    lr = 0.4
    steps = range(TOTAL + 5)  # a few steps past the end: the last value holds
    got = learning_rates({"lr": lr, "schedule": schedule, **keys}, steps)
    want = [form(t, lr, **form_args) for t in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- optimizers

def sgd_updates(w, grads, lr, momentum=0.0, nesterov=False, **_):
    velocity = np.zeros_like(w)
    for g in grads:
        velocity = momentum * velocity - lr * g
        w = w + (momentum * velocity - lr * g if nesterov else velocity)
    return w


def adam_updates(w, grads, lr, beta_1=0.9, beta_2=0.999, weight_decay=0.0, eps=1e-7, **_):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        w = w - lr * weight_decay * w  # decoupled weight decay (Loshchilov & Hutter), before the step
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


# optimizer -> (update rule, optim settings to try with the rule's arguments)
RULES = {
    "sgd": (sgd_updates, [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
    ]),
    "adam": (adam_updates, [
        {},
        {"beta_1": 0.5, "beta_2": 0.9},
    ]),
    "adamw": (adam_updates, [
        {"weight_decay": 0.01},
    ]),
}


def test_every_optimizer_has_an_update_rule_here():
    assert set(OPTIMIZERS.names()) <= set(RULES), "write the new optimizer's update out in RULES"


@pytest.mark.parametrize(
    "name, keys", [(name, keys) for name, (_, cases) in RULES.items() for keys in cases],
    ids=[f"{name}-{i}" for name, (_, cases) in RULES.items() for i in range(len(cases))],
)
def test_three_updates_follow_the_rule(name, keys):
    import keras

    from kerasclf.training.optimizers import build_optimizer

    rule = RULES[name][0]
    lr = 0.05
    cfg = from_dict({"optim": {"name": name, "lr": lr, **keys}})
    optimizer = build_optimizer(cfg.optim, steps_per_epoch=10, epochs=1)
    w0 = np.array([3.0, -2.0, 0.5], "float32")
    grads = [np.array(g, "float32") for g in ([1.0, -0.5, 2.0], [0.2, 0.3, -1.0], [-0.7, 0.1, 0.4])]
    variable = keras.Variable(w0)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    want = rule(w0.astype("float64"), [g.astype("float64") for g in grads], lr, **keys)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), want, rtol=1e-5, atol=1e-6)
