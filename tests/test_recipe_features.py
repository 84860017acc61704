"""airbench94's recipe features in kerasclf (issue #13): Lookahead, alternating flip,
whitening-bias schedule, airbench's BatchNorm epsilon.

Backend-agnostic tests also run under JAX:
    KERAS_BACKEND=jax python -m pytest tests/test_recipe_features.py -m backend_agnostic -q
"""

import keras
import numpy as np
import pytest
from keras import ops

from kerasclf.config import from_dict
from kerasclf.data.info import DatasetInfo
from kerasclf.errors import ConfigError
from kerasclf.layers.alternating_flip import AlternatingFlip
from kerasclf.models import build_model
from kerasclf.training.epoch_hooks import EpochHooks
from kerasclf.training.lookahead import LookaheadSGD
from kerasclf.training.optimizers import build_optimizer


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


# ---------------------------------------------------------------------------------------
# Lookahead
# ---------------------------------------------------------------------------------------


def _steps(optimizer, n, grad=1.0):
    """n optimizer steps on one scalar weight (start 0) with a constant gradient; the weights after each."""
    w = keras.Variable(np.zeros((1,), "float32"), name="w")
    out = []
    for _ in range(n):
        optimizer.apply([ops.convert_to_tensor(np.full((1,), grad, "float32"))], [w])
        out.append(float(np_(w)[0]))
    return out


@pytest.mark.backend_agnostic
def test_lookahead_constant_decay_matches_hand_computed_average():
    """lr 1, gradient 1, sync every 2 steps with weight 0.5 on the slow copy:
    fast -1 (slow starts there), -2 -> (-1 + -2)/2 = -1.5, -2.5, -3.5 -> (-1.5 + -3.5)/2 = -2.5."""
    opt = LookaheadSGD(learning_rate=1.0, lookahead_every=2, lookahead_decay=0.5, lookahead_power=0.0, total_steps=100)
    assert _steps(opt, 5) == pytest.approx([-1.0, -1.5, -2.5, -2.5, -3.5])
    plain = keras.optimizers.SGD(learning_rate=1.0)
    assert _steps(plain, 4) == pytest.approx([-1.0, -2.0, -3.0, -4.0])


@pytest.mark.backend_agnostic
def test_lookahead_weight_grows_with_step_and_last_step_syncs():
    """power 3, 5 steps in all, sync every 2: step 2 weight 0.5 * (2/5)**3 = 0.032,
    step 4 weight 0.5 * (4/5)**3 = 0.256, step 5 (the last, not a multiple of 2) syncs too."""
    opt = LookaheadSGD(learning_rate=1.0, lookahead_every=2, lookahead_decay=0.5, lookahead_power=3.0, total_steps=5)
    w = _steps(opt, 5)
    s2 = 0.032 * -1.0 + 0.968 * -2.0
    s4 = 0.256 * s2 + 0.744 * (s2 - 2.0)
    s5 = 0.5 * s4 + 0.5 * (s4 - 1.0)
    assert w == pytest.approx([-1.0, s2, s2 - 1.0, s4, s5], rel=1e-5)


@pytest.mark.backend_agnostic
def test_lookahead_optimizer_from_config_and_checkpoint_round_trip(tmp_path):
    cfg = from_dict({"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "lookahead_every": 5}})
    opt = build_optimizer(cfg.optim, steps_per_epoch=7, epochs=3)
    assert isinstance(opt, LookaheadSGD) and opt.total_steps == 21 and opt.nesterov
    assert not isinstance(build_optimizer(from_dict({}).optim, 7, 3), LookaheadSGD)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=opt, loss="mse")
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.optimizer, LookaheadSGD)
    assert (loaded.optimizer.lookahead_every, loaded.optimizer.total_steps) == (5, 21)


def test_lookahead_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="optim.lookahead_decay must be in"):
        from_dict({"optim": {"name": "sgd", "lookahead_every": 5, "lookahead_decay": 1.5}})


@pytest.mark.backend_agnostic
def test_lookahead_in_fit_ends_on_the_slow_weights():
    """After fit, the weights equal the optimizer's slow copy (the last step synced them)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    opt = LookaheadSGD(learning_rate=0.1, momentum=0.9, lookahead_every=5, total_steps=7)
    model.compile(optimizer=opt, loss="mse")
    x = np.random.default_rng(0).normal(size=(56, 4)).astype("float32")
    model.fit(x, x[:, :3] * 2.0, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert int(np_(opt.iterations)) == 7
    for var, slow in zip(model.trainable_variables, opt._model_variables_moving_average):
        np.testing.assert_allclose(np_(var), np_(slow), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Alternating flip
# ---------------------------------------------------------------------------------------


def _flipped(layer, x):
    out = np_(layer(x, training=True))
    mirrored = np.all(np.isclose(out, x[:, :, ::-1]), axis=(1, 2, 3))
    same = np.all(np.isclose(out, x), axis=(1, 2, 3))
    assert np.all(mirrored ^ same)  # every image either mirrored or untouched
    return mirrored


@pytest.mark.backend_agnostic
def test_alternating_flip_flips_the_complement_of_the_previous_epoch():
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    layer = AlternatingFlip(seed=3)
    masks = []
    for epoch in range(4):
        layer.set_epoch(epoch)
        masks.append(_flipped(layer, x))
    assert 16 <= masks[0].sum() <= 48  # about half, not all or none
    np.testing.assert_array_equal(masks[1], ~masks[0])
    np.testing.assert_array_equal(masks[2], masks[0])
    np.testing.assert_array_equal(masks[3], ~masks[0])
    # An image's flip does not depend on the batch it is in (shuffling between epochs).
    order = np.random.default_rng(1).permutation(64)
    layer.set_epoch(0)
    np.testing.assert_array_equal(_flipped(layer, x[order]), masks[0][order])
    # Inference: identity.
    np.testing.assert_array_equal(np_(layer(x, training=False)), x)


@pytest.mark.backend_agnostic
def test_alternating_flip_seed_changes_which_half():
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    masks = [_flipped(AlternatingFlip(seed=s), x) for s in (1, 2)]
    assert not np.array_equal(masks[0], masks[1])


def test_flip_mode_config_builds_the_layer_and_rejects_unknown_modes():
    from kerasclf.layers.augment import RandomFlipXLA, build_augmentation

    (layer,) = build_augmentation(from_dict({"augment": {"flip": True, "flip_mode": "alternate"}}).augment, (8, 8), 0)
    assert isinstance(layer, AlternatingFlip)
    (layer,) = build_augmentation(from_dict({"augment": {"flip": True}}).augment, (8, 8), 0)
    assert isinstance(layer, RandomFlipXLA)
    with pytest.raises(ConfigError, match="flip_mode"):
        build_augmentation(from_dict({"augment": {"flip": True, "flip_mode": "sometimes"}}).augment, (8, 8), 0)


# ---------------------------------------------------------------------------------------
# In a fit: EpochHooks drives the flip and the whitening-bias schedule
# ---------------------------------------------------------------------------------------


def _airbench(**model_keys):
    cfg = from_dict(
        {
            "model": {"name": "airbench", "widths": [4, 8, 8], **model_keys},
            "augment": {"flip": True, "flip_mode": "alternate"},
        }
    )
    info = DatasetInfo("synthetic", ["a", "b"], (16, 16), 3, [120.0] * 3, [60.0] * 3)
    return build_model(cfg, info)


class _Record(keras.callbacks.Callback):
    """Per epoch: the whitening layer's bias in use and the flip layer's epoch parity."""

    def __init__(self):
        super().__init__()
        self.bias, self.parity = [], []

    def on_epoch_end(self, epoch, logs=None):
        whiten = self.model.get_layer("whiten")
        self.bias.append(np_(whiten.current_bias()).copy())
        self.parity.append(int(np_(self.model.get_layer("aug_flip").epoch_parity)))


@pytest.mark.backend_agnostic
def test_whitening_bias_trains_for_n_epochs_then_stays_frozen():
    keras.utils.set_random_seed(0)
    model = _airbench(whiten_bias_epochs=2)
    x = np.random.default_rng(0).integers(0, 256, size=(32, 16, 16, 3)).astype("uint8")
    y = np.arange(32) % 2
    whiten = model.get_layer("whiten")
    start = np_(whiten.current_bias()).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9, weight_decay=0.01), loss="sparse_categorical_crossentropy")
    record = _Record()
    model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[EpochHooks(), record])
    assert not np.allclose(record.bias[0], start)  # epoch 0 trains it
    assert not np.allclose(record.bias[1], record.bias[0])  # epoch 1 too
    for later in record.bias[2:]:  # frozen from epoch 2 on, despite momentum and weight decay
        np.testing.assert_array_equal(later, record.bias[1])
    assert not np.allclose(np_(whiten.bias), record.bias[1])  # the raw variable did keep moving
    assert record.parity == [0, 1, 0, 1, 0]
    np.testing.assert_array_equal(np_(whiten.current_bias()), record.bias[1])  # inference uses the frozen copy


@pytest.mark.backend_agnostic
def test_whitening_bias_schedule_survives_save_and_load(tmp_path):
    model = _airbench(whiten_bias_epochs=0)
    whiten = model.get_layer("whiten")
    whiten.bias.assign(np.full(whiten.bias.shape, 0.3, "float32"))
    whiten.set_epoch(0)  # N=0: frozen from the start, at the current bias
    whiten.bias.assign(np.zeros(whiten.bias.shape, "float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np_(loaded.get_layer("whiten").current_bias()), 0.3)


@pytest.mark.backend_agnostic
def test_airbench_bn_epsilon_key_reaches_its_batchnorm_layers():
    model = _airbench(bn_epsilon=1e-12)
    eps = {layer.epsilon for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert eps == {1e-12}
    with pytest.raises(ConfigError, match="bn_epsilon"):
        _airbench(bn_epsilon=0)


# ---------------------------------------------------------------------------------------
# Held-out images fixed across training seeds; airbench's warm-up start
# ---------------------------------------------------------------------------------------


def test_split_seed_keeps_the_held_out_images_across_run_seeds():
    from kerasclf.data import build_dataset

    def val_images(seed, split_seed):
        cfg = from_dict({"data": {"source": "synthetic", "val_fraction": 0.25, "split_seed": split_seed}})
        return build_dataset(cfg.data, seed).val.x

    np.testing.assert_array_equal(val_images(0, 7), val_images(1, 7))
    assert not np.array_equal(val_images(0, None), val_images(1, None))
    with pytest.raises(ConfigError, match="split_seed"):
        val_images(0, -1)


@pytest.mark.parametrize("start, expected", [(None, 0.04), (0.2, 0.2)])
def test_onecycle_warmup_starts_at_start_lr_fraction(start, expected):
    from kerasclf.training.schedules import build_schedule

    cfg = from_dict({"optim": {"lr": 2.0, "schedule": "onecycle", "warmup_epochs": 2, "start_lr_fraction": start}})
    schedule = build_schedule(cfg.optim, steps_per_epoch=10, epochs=10)
    assert float(np_(schedule(0))) == pytest.approx(2.0 * expected)
    assert float(np_(schedule(10))) == pytest.approx(2.0 * (expected + (1 - expected) / 2))  # half-way up
    assert float(np_(schedule(20))) == pytest.approx(2.0)
