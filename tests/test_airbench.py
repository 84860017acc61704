"""Behavioural tests for kerasclf.models.airbench (the airbench94-style network), .whitening
and .data_init.

Tests marked backend_agnostic use only keras / numpy and also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_airbench.py -m backend_agnostic -q
"""

import keras
import numpy as np
import pytest
from keras import ops

from kerasclf.config import from_dict
from kerasclf.data.info import DatasetInfo
from kerasclf.models import build_model
from kerasclf.models.airbench import FlipTTA, PartialIdentity
from kerasclf.models.data_init import init_from_data
from kerasclf.models.whitening import PatchWhitening, patch_statistics, whitening_kernel

SMALL = [8, 16, 16]  # block widths that keep a CPU fit step to a second or two
MEAN, STD = [125.0, 122.0, 113.0], [62.0, 61.0, 66.0]


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def correlated_images(n=64, size=12, seed=0):
    """float images whose pixels are correlated across neighbours and channels."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, size + 2, size + 2, 3))
    smooth = sum(noise[:, i : i + size, j : j + size] for i in range(3) for j in range(3)) / 3.0
    mix = np.array([[1.0, 0.8, 0.5], [0.0, 0.6, 0.4], [0.0, 0.0, 0.3]])
    return smooth @ mix + np.array([2.0, -1.0, 0.5])


def uint8_images(n=48, size=32, seed=0):
    x = correlated_images(n, size, seed)
    return np.clip(x * 40 + 128, 0, 255).astype(np.uint8)


def make_model(tta=0, widths=SMALL, whiten_from="train", size=32, num_classes=10, augment=None):
    cfg = from_dict(
        {
            "model": {"name": "airbench", "widths": list(widths), "tta": tta, "whiten_from": whiten_from},
            "augment": augment or {"flip": True, "crop_padding": 2},
        }
    )
    info = DatasetInfo("synthetic", [str(i) for i in range(num_classes)], (size, size), 3, MEAN, STD)
    return build_model(cfg, info)


def find(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        inner = layer.layer if isinstance(layer, keras.layers.Wrapper) else layer
        if isinstance(inner, keras.Model):
            found = find(inner, name)
            if found is not None:
                return found
    return None


def standardized(x):
    return (x.astype(np.float64) - np.array(MEAN)) / np.array(STD)


# ----------------------------------------------------------------------------- whitening


@pytest.mark.backend_agnostic
def test_whitening_kernel_whitens_correlated_patches():
    x = correlated_images()
    mean, cov = patch_statistics(x)
    assert np.abs(cov - np.diag(np.diag(cov))).max() > 0.3  # the data really is correlated
    kernel = whitening_kernel(x, eps=1e-9)
    assert kernel.shape == (2, 2, 3, 24) and kernel.dtype == np.float32
    half = kernel[..., :12].reshape(12, 12)  # rows: (row, col, channel) of a patch
    np.testing.assert_allclose(half.T @ cov @ half, np.eye(12), atol=1e-4)
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])


@pytest.mark.backend_agnostic
def test_whitening_eps_shrinks_small_directions_and_order_is_largest_first():
    x = correlated_images(seed=1)
    _, cov = patch_statistics(x)
    values = np.linalg.eigvalsh(cov)[::-1]
    eps = float(values[-1])  # as large as the smallest eigenvalue
    half = whitening_kernel(x, eps=eps)[..., :12].reshape(12, 12)
    out_var = np.diag(half.T @ cov @ half)
    np.testing.assert_allclose(out_var, values / (values + eps), rtol=1e-4)
    assert out_var[0] > out_var[-1]  # filter 0: the largest-variance direction


@pytest.mark.backend_agnostic
def test_patch_whitening_layer_output_has_identity_covariance():
    x = correlated_images(n=32).astype("float32")
    layer = PatchWhitening(eps=1e-9)
    layer.build(x.shape)
    layer.init_from_data(x)
    y = np_(layer(x)).reshape(-1, 24).astype(np.float64)
    assert y.shape[0] == 32 * 11 * 11
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.cov(y[:, :12].T, bias=True), np.eye(12), atol=2e-3)


@pytest.mark.backend_agnostic
def test_partial_identity_initializer():
    kernel = np_(PartialIdentity(seed=0)((3, 3, 4, 6), "float32"))
    for i in range(4):
        expected = np.zeros((3, 3, 4))
        expected[1, 1, i] = 1.0
        np.testing.assert_array_equal(kernel[..., i], expected)
    rest = kernel[..., 4:]
    assert np.abs(rest).max() <= 1 / np.sqrt(3 * 3 * 4) + 1e-6 and rest.std() > 0.05


# ----------------------------------------------------------------------------- the model


@pytest.mark.backend_agnostic
def test_a_run_standardises_and_whitens_with_its_own_training_images(tmp_path):
    """What the registration asks for (standardize, needs_data), seen in the model a run
    assembles: the scaling is the training split's, and the whitening kernel is computed
    from the training images scaled that way (all of them: fewer than init_from_data samples)."""
    from kerasclf.config import load_config
    from kerasclf.training.assemble import prepare

    cfg = load_config(None, ["data.source=synthetic", "model.name=airbench", f"model.widths={SMALL}",
                             f"train.log_dir={tmp_path}"])
    prepared = prepare(cfg)
    x = prepared.data.train.x
    pixels = x.reshape(-1, 3).astype(np.float64)
    mean, std = pixels.mean(0), pixels.std(0)
    preprocess = prepared.model.get_layer("preprocess")
    np.testing.assert_allclose(preprocess.mean, mean, rtol=1e-3)
    np.testing.assert_allclose(preprocess.std, std, rtol=1e-3)
    expected = whitening_kernel((x.astype(np.float64) - mean) / std, eps=5e-4)
    np.testing.assert_allclose(np_(find(prepared.model, "whiten").kernel), expected, rtol=2e-3, atol=2e-3)


@pytest.mark.backend_agnostic
def test_builds_for_cifar_shape_default_widths():
    model = make_model(widths=(64, 256, 256))
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert find(model, "whiten").kernel.shape == (2, 2, 3, 24)
    assert [find(model, f"block{i}_conv2").filters for i in (1, 2, 3)] == [64, 256, 256]
    assert find(model, "logit_scale").scale == pytest.approx(1 / 9)
    assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    probs = np_(model.predict(uint8_images(n=4), verbose=0))
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("tta", [0, 2])
def test_init_from_data_whitens_the_preprocessed_training_images(tta):
    model = make_model(tta=tta)
    x = uint8_images(n=40)
    assert init_from_data(model, x) == (["tta/whiten"] if tta else ["whiten"])
    # The layer's input is the standardised image (augmentation is off in inference).
    expected = whitening_kernel(standardized(x), eps=5e-4)
    np.testing.assert_allclose(np_(find(model, "whiten").kernel), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.backend_agnostic
def test_init_from_data_samples_at_most_max_images_and_respects_none():
    x = uint8_images(n=40)
    model = make_model()
    init_from_data(model, x, max_images=10, seed=3)
    index = np.sort(np.random.default_rng(3).choice(40, 10, replace=False))
    expected = whitening_kernel(standardized(x[index]), eps=5e-4)
    np.testing.assert_allclose(np_(find(model, "whiten").kernel), expected, rtol=1e-3, atol=1e-3)

    untouched = make_model(whiten_from="none")
    before = np_(find(untouched, "whiten").kernel)
    assert init_from_data(untouched, x) == []
    np.testing.assert_array_equal(np_(find(untouched, "whiten").kernel), before)


@pytest.mark.backend_agnostic
def test_whiten_from_array_sets_kernel_in_the_builder():
    from kerasclf.models.airbench import airbench

    feats = standardized(uint8_images(n=16)).astype("float32")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, airbench(inputs, widths=SMALL, whiten_from=feats))
    layer = model.get_layer("whiten")
    assert layer.data_init is False  # a later init_from_data leaves it alone
    np.testing.assert_allclose(np_(layer.kernel), whitening_kernel(feats), rtol=1e-3, atol=1e-3)


@pytest.mark.backend_agnostic
def test_whitening_conv_is_frozen_even_under_freeze_policy_full():
    from kerasclf.models.freeze import apply_trainable

    model = make_model(tta=2)
    layer = find(model, "whiten")
    paths = lambda vs: {v.path for v in vs}  # noqa: E731
    for _ in range(2):  # as built, then after the run's freeze policy and a blanket unfreeze
        assert layer.kernel.path not in paths(model.trainable_weights)
        assert layer.kernel.path in paths(model.non_trainable_weights)
        assert layer.bias.path in paths(model.trainable_weights)
        apply_trainable(model, "full")
        model.trainable = True


@pytest.mark.backend_agnostic
def test_tta_averages_mirror_at_inference_and_is_one_pass_in_training():
    model = make_model(tta=1, augment={})
    init_from_data(model, uint8_images(n=16))
    tta = model.get_layer("tta")
    assert isinstance(tta, FlipTTA)
    x = model.get_layer("preprocess")(uint8_images(n=4, seed=5))
    net = tta.layer
    mirrored = 0.5 * (np_(net(x, training=False)) + np_(net(ops.flip(x, axis=2), training=False)))
    np.testing.assert_allclose(np_(tta(x, training=False)), mirrored, atol=1e-5)
    np.testing.assert_allclose(np_(tta(x)), mirrored, atol=1e-5)

    def mirror_mean(images):
        return 0.5 * (np_(net(images, training=False)) + np_(net(images[:, :, ::-1], training=False)))

    padded = np.pad(np_(x), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    expected = 0.5 * mirrored + 0.25 * (mirror_mean(padded[:, :32, :32]) + mirror_mean(padded[:, 2:, 2:]))
    np.testing.assert_allclose(np_(FlipTTA(net, level=2)(x, training=False)), expected, atol=1e-5)
    # Training: one pass (last: it updates the BatchNorm statistics the checks above used).
    np.testing.assert_allclose(np_(tta(x, training=True)), np_(net(x, training=True)), atol=1e-5)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("tta", [0, 2])
def test_save_and_reload_safe_mode(tmp_path, tta):
    model = make_model(tta=tta)
    x = uint8_images(n=8, seed=2)
    init_from_data(model, uint8_images(n=32))
    path = tmp_path / "airbench.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np_(find(loaded, "whiten").kernel), np_(find(model, "whiten").kernel))
    np.testing.assert_allclose(
        np_(loaded.predict(x, verbose=0)), np_(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6
    )
    assert len(loaded.trainable_weights) == len(model.trainable_weights)


@pytest.mark.backend_agnostic
def test_one_fit_step_trains_everything_but_the_whitening_kernel():
    keras.utils.set_random_seed(0)
    model = make_model(tta=2)
    x = uint8_images(n=16, seed=4)
    y = np.eye(10, dtype="float32")[np.arange(16) % 10]
    init_from_data(model, x)
    kernel = np_(find(model, "whiten").kernel)
    dense = np_(find(model, "head_dense").kernel)
    bn_mean = np_(find(model, "block1_1_bn").moving_mean)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.85, nesterov=True, weight_decay=0.009),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_array_equal(np_(find(model, "whiten").kernel), kernel)
    assert not np.allclose(np_(find(model, "head_dense").kernel), dense)
    assert not np.allclose(np_(find(model, "block1_1_bn").moving_mean), bn_mean)
