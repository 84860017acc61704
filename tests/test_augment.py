"""Behavioural tests for kerasclf.layers.augment (XLA-safe augmentation), .sampling, .jit and .mixing.

Tests marked backend_agnostic use only keras and also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_augment.py -m backend_agnostic -q
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

from kerasclf.config import AugmentConfig, Config
from kerasclf.errors import ConfigError
from kerasclf.layers import augment as aug
from kerasclf.layers import mixing
from kerasclf.layers.jit import jit_blockers, warn_if_not_jit
from kerasclf.layers.sampling import affine_resample

BACKEND = keras.backend.backend()

# One instance factory per layer: (id, factory).
LAYERS = [
    ("flip", lambda: aug.RandomFlipXLA(seed=1)),
    ("crop", lambda: aug.RandomPadCrop(2, seed=2)),
    ("crop_constant", lambda: aug.RandomPadCrop(3, mode="constant", seed=2)),
    ("translate", lambda: aug.RandomTranslateXLA(0.2, seed=3)),
    ("rotation", lambda: aug.RandomRotationXLA(20, seed=4)),
    ("zoom", lambda: aug.RandomZoomXLA(0.2, interpolation="nearest", seed=5)),
    ("erasing", lambda: aug.RandomErasing(4, seed=6)),
    ("color", lambda: aug.RandomColorJitter(0.4, seed=7)),
]
LAYER_IDS = [name for name, _ in LAYERS]
LAYER_FACTORIES = [make for _, make in LAYERS]


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def images(n=8, size=12, channels=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, channels)).astype("float32")


def train(layer, x):
    return np_(layer(x, training=True))


def chi_square(counts):
    counts = np.asarray(counts, dtype=float)
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


# ----------------------------------------------------------------------------- layers


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("make", LAYER_FACTORIES, ids=LAYER_IDS)
def test_identity_outside_training(make):
    layer, x = make(), images()
    assert layer.supports_jit is True
    for training in (None, False):
        np.testing.assert_array_equal(np_(layer(x, training=training)), x)
    assert np.abs(train(layer, x) - x).max() > 0  # and does something in training


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("make", LAYER_FACTORIES, ids=LAYER_IDS)
def test_shape_and_dtype_kept(make):
    x = images(n=3, size=10)
    out = make()(x, training=True)
    assert tuple(out.shape) == x.shape
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    layer = make()
    layer.dtype_policy = keras.DTypePolicy("mixed_bfloat16")
    out = layer(ops.cast(x, "bfloat16"), training=True)
    assert tuple(out.shape) == x.shape
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


@pytest.mark.backend_agnostic
def test_flip_rate_near_half_and_per_image():
    n = 4000
    x = np.tile(np.arange(6, dtype="float32").reshape(1, 2, 3, 1), (n, 1, 1, 1))
    out = train(aug.RandomFlipXLA(seed=11), x)
    flipped = (out == x[:, :, ::-1]).all(axis=(1, 2, 3))
    same = (out == x).all(axis=(1, 2, 3))
    assert (flipped ^ same).all()  # each image is either flipped or untouched
    # Binomial(4000, 0.5): sd 0.0079, so 0.035 is > 4 sd.
    assert abs(flipped.mean() - 0.5) < 0.035
    assert 0 < flipped[:32].sum() < 32  # drawn per image, not per batch


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge", "constant"])
def test_pad_crop_offsets_uniform_and_match_numpy_pad(mode):
    n, size, pad = 3000, 8, 2
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    # Pixel values encode their coordinates (+1 so the constant mode's zeros stand out).
    coords = np.stack([yy + 1, xx + 1, yy * size + xx], axis=-1).astype("float32")
    x = np.tile(coords[None], (n, 1, 1, 1))
    out = train(aug.RandomPadCrop(pad, mode=mode, seed=21), x)
    # Output pixel (pad, pad) reads original (offset_y, offset_x): never outside the image.
    oy = out[:, pad, pad, 0].astype(int) - 1
    ox = out[:, pad, pad, 1].astype(int) - 1
    assert set(oy) == set(ox) == set(range(2 * pad + 1))  # offsets 0..2N inclusive
    joint = np.bincount(oy * (2 * pad + 1) + ox, minlength=(2 * pad + 1) ** 2)
    assert chi_square(joint) < 51.2  # chi2(24 dof), p = 0.001
    assert chi_square(np.bincount(oy)) < 18.5 and chi_square(np.bincount(ox)) < 18.5  # chi2(4), p = 0.001
    np_mode = {"edge": "edge", "constant": "constant", "reflect": "reflect", "symmetric": "symmetric"}[mode]
    padded = np.pad(coords, ((pad, pad), (pad, pad), (0, 0)), mode=np_mode)
    for i in range(50):
        expected = padded[oy[i] : oy[i] + size, ox[i] : ox[i] + size]
        np.testing.assert_array_equal(out[i], expected)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize(
    "make",
    [
        lambda: aug.RandomRotationXLA(0, seed=1),
        lambda: aug.RandomTranslateXLA(0.0, seed=1),
        lambda: aug.RandomZoomXLA(0.0, seed=1),
        lambda: aug.RandomPadCrop(0, seed=1),
    ],
    ids=["rotation0", "translate0", "zoom0", "crop0"],
)
def test_zero_strength_geometry_is_identity_in_training(make):
    x = images(n=4, size=9)
    np.testing.assert_array_equal(train(make(), x), x)


@pytest.mark.backend_agnostic
def test_affine_resample_rot90_and_integer_shift():
    x = images(n=2, size=7, channels=2)
    for angle, k in ((np.pi / 2, 1), (-np.pi / 2, 3)):
        c, s = np.cos(angle), np.sin(angle)
        matrix = np.tile(np.array([[c, s], [-s, c]], "float32"), (2, 1, 1))
        out = np_(affine_resample(x, matrix, np.zeros((2, 2), "float32")))
        # counter-clockwise as displayed: np.rot90 on the (H, W) axes
        np.testing.assert_allclose(out, np.rot90(x, k=k, axes=(1, 2)), atol=1e-4)
    eye = np.tile(np.eye(2, dtype="float32"), (2, 1, 1))
    shifted = np_(affine_resample(x, eye, np.array([[-1.0, 0.0], [0.0, 2.0]], "float32")))
    np.testing.assert_array_equal(shifted[0, 1:], x[0, :-1])  # down by one row
    np.testing.assert_array_equal(shifted[0, 0], 0.0)  # zero fill
    np.testing.assert_array_equal(shifted[1, :, :-2], x[1, :, 2:])  # left by two columns
    np.testing.assert_array_equal(shifted[1, :, -2:], 0.0)


@pytest.mark.backend_agnostic
def test_translation_nearest_shifts_within_factor_with_zero_fill():
    n, size, factor = 200, 16, 0.25
    x = np.ones((n, size, size, 1), "float32")
    out = train(aug.RandomTranslateXLA(factor, interpolation="nearest", seed=31), x)
    assert set(np.unique(out)) <= {0.0, 1.0}
    kept_rows = (out[..., 0] == 1).any(axis=2).sum(axis=1)
    kept_cols = (out[..., 0] == 1).any(axis=1).sum(axis=1)
    assert (kept_rows >= size - factor * size - 1).all() and (kept_cols >= size - factor * size - 1).all()
    assert (out.reshape(n, -1).sum(axis=1) == kept_rows * kept_cols).all()  # a shifted rectangle
    assert (kept_rows < size).mean() > 0.5  # most images moved


@pytest.mark.backend_agnostic
def test_rotation_keeps_centre_and_varies_per_image():
    x = images(n=16, size=9, channels=1)
    out = train(aug.RandomRotationXLA(45, seed=41), x)
    np.testing.assert_allclose(out[:, 4, 4], x[:, 4, 4], atol=1e-5)  # rotation about the centre
    diffs = np.abs(out - x).reshape(16, -1).mean(axis=1)
    assert len(np.unique(np.round(diffs, 5))) > 8


@pytest.mark.backend_agnostic
def test_zoom_in_magnifies_and_zoom_out_pads_with_zeros():
    n, size = 200, 16
    x = np.ones((n, size, size, 1), "float32")
    out = train(aug.RandomZoomXLA(0.5, interpolation="nearest", seed=51), x)
    zeros = (out == 0).reshape(n, -1).sum(axis=1)
    assert (zeros > 0).any() and (zeros == 0).any()  # some zoomed out, some in


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("size", [5, 4])
def test_erasing_zeros_exactly_a_square_when_inside(size):
    n, side = 600, 16
    x = np.ones((n, side, side, 2), "float32")
    out = train(aug.RandomErasing(size, seed=61), x)
    assert set(np.unique(out)) <= {0.0, 1.0}
    erased = out[..., 0] == 0
    np.testing.assert_array_equal(erased, out[..., 1] == 0)  # all channels
    inside = 0
    for mask in erased:
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        assert len(rows) and len(cols)  # the centre is always inside
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask.sum() == h * w and h <= size and w <= size  # a (clipped) square
        if h == size and w == size:
            inside += 1
            assert mask.sum() == size * size
    # centre uniform over the image: P(square fully inside) = ((side - size + 1) / side) ** 2
    p_inside = ((side - size + 1) / side) ** 2
    assert abs(inside / n - p_inside) < 4 * np.sqrt(p_inside * (1 - p_inside) / n)


@pytest.mark.backend_agnostic
def test_color_jitter_changes_stats_keeps_shape():
    x = np.random.default_rng(0).uniform(0, 1, size=(64, 8, 8, 3)).astype("float32")
    out = train(aug.RandomColorJitter(0.5, seed=71), x)
    assert out.shape == x.shape
    assert np.isfinite(out).all()
    mean_change = np.abs(out.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3)))
    std_change = np.abs(out.std(axis=(1, 2, 3)) - x.std(axis=(1, 2, 3)))
    assert (mean_change > 1e-3).mean() > 0.8 and (std_change > 1e-3).mean() > 0.8
    sat_in = np.abs(x - x.mean(axis=-1, keepdims=True)).mean(axis=(1, 2, 3))
    sat_out = np.abs(out - out.mean(axis=-1, keepdims=True)).mean(axis=(1, 2, 3))
    assert (np.abs(sat_out / sat_in - 1) > 1e-3).mean() > 0.8
    # independent of the value range: affine rescaling commutes with the jitter
    out_255 = train(aug.RandomColorJitter(0.5, seed=71), x * 255.0 - 30.0)
    np.testing.assert_allclose(out_255, out * 255.0 - 30.0, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(train(aug.RandomColorJitter(0.0, seed=1), x), x, atol=1e-5)


@pytest.mark.backend_agnostic
def test_same_seed_same_draws_and_draws_advance():
    x = images(n=6)
    a, b = aug.RandomRotationXLA(30, seed=5), aug.RandomRotationXLA(30, seed=5)
    first = train(a, x)
    np.testing.assert_array_equal(first, train(b, x))
    assert np.abs(train(a, x) - first).max() > 0


# ----------------------------------------------------------------------------- serialisation


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("make", LAYER_FACTORIES, ids=LAYER_IDS)
def test_get_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    via_keras = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(via_keras) is type(layer) and via_keras.get_config() == config
    x = images(n=4)
    np.testing.assert_array_equal(train(clone, x), train(make(), x))  # same seed, same draws


def small_model(aug_layers, size=16):
    inputs = keras.Input((size, size, 3))
    x = inputs
    for layer in aug_layers:
        x = layer(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(x)
    return keras.Model(inputs, outputs)


def all_layers():
    return [make() for make in LAYER_FACTORIES]


@pytest.mark.backend_agnostic
def test_model_save_and_load_safe_mode(tmp_path):
    model = small_model(all_layers())
    x = images(n=4, size=16)
    path = tmp_path / "aug.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    original = {layer.name: layer for layer in model.layers}
    for layer in loaded.layers:
        assert type(layer) is type(original[layer.name])
        assert layer.get_config() == original[layer.name].get_config()
    np.testing.assert_allclose(np_(loaded.predict(x, verbose=0)), np_(model.predict(x, verbose=0)), atol=1e-6)


# ----------------------------------------------------------------------------- XLA


def _expect_auto(jit_compile):
    """Keras's own rule: 'auto' means no XLA with TensorFlow on a CPU-only machine."""
    if jit_compile == "auto" and BACKEND == "tensorflow":
        import tensorflow as tf

        if not [d for d in tf.config.list_physical_devices() if d.device_type != "CPU"]:
            pytest.skip("Keras resolves jit_compile='auto' to False with TensorFlow on CPU")
    if BACKEND == "torch" and jit_compile == "auto":
        pytest.skip("Keras resolves jit_compile='auto' to False with PyTorch")


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("jit_compile", [True, "auto"])
def test_keras_random_translation_turns_xla_off(jit_compile):
    """Control: proves the jit assertion in the next test can fail."""
    _expect_auto(jit_compile)
    model = small_model([keras.layers.RandomTranslation(0.1, 0.1, name="keras_translation")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=jit_compile)
    assert model.jit_compile is False


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("jit_compile", [True, "auto"])
def test_xla_stays_on_and_one_epoch_fits(jit_compile):
    _expect_auto(jit_compile)
    keras.utils.set_random_seed(0)
    model = small_model(all_layers())
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=jit_compile)
    assert model.jit_compile is True
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.backend_agnostic
def test_jit_blockers_and_warning_name_keras_layers():
    inner = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.RandomRotation(0.1, name="keras_rotation")], name="inner"
    )
    inputs = keras.Input((16, 16, 3))
    x = aug.RandomFlipXLA(name="aug_flip")(inputs)
    x = keras.layers.RandomCrop(16, 16, name="keras_crop")(inner(x))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs, name="blocked")
    assert jit_blockers(model) == ["inner/keras_rotation", "keras_crop"]
    with pytest.warns(UserWarning) as record:
        names = warn_if_not_jit(model)
    assert names == ["inner/keras_rotation", "keras_crop"]
    message = str(record[0].message)
    for part in ("inner/keras_rotation", "keras_crop", "XLA", "whole model", "augment.rotation", "augment.crop_padding"):
        assert part in message

    clean = small_model(all_layers())
    assert jit_blockers(clean) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_not_jit(clean) == []


# ----------------------------------------------------------------------------- config


@pytest.mark.backend_agnostic
def test_build_augmentation_names_order_and_empty():
    cfg = AugmentConfig(
        flip=True, crop_padding=4, translate=0.1, rotation=15, zoom=0.1, cutout=8, color_jitter=0.3,
        mixup=0.2, cutmix=1.0,
    )
    layers = aug.build_augmentation(cfg, (32, 32), seed=3)
    assert [layer.name for layer in layers] == [
        "aug_flip", "aug_crop", "aug_translate", "aug_rotation", "aug_zoom", "aug_color_jitter", "aug_cutout",
    ]
    assert [type(layer) for layer in layers] == [
        aug.RandomFlipXLA, aug.RandomPadCrop, aug.RandomTranslateXLA, aug.RandomRotationXLA,
        aug.RandomZoomXLA, aug.RandomColorJitter, aug.RandomErasing,
    ]
    assert layers[1].padding == 4 and layers[1].mode == "reflect"
    assert layers[3].degrees == 15 and layers[6].size == 8
    assert all(layer.supports_jit for layer in layers)
    assert aug.build_augmentation(AugmentConfig(), (32, 32)) == []
    assert aug.build_augmentation(AugmentConfig(mixup=0.2, cutmix=1.0), (32, 32)) == []
    with pytest.raises(ConfigError, match="crop_padding"):
        aug.build_augmentation(AugmentConfig(crop_padding=32), (32, 32))
    with pytest.raises(ConfigError, match="zoom"):
        aug.build_augmentation(AugmentConfig(zoom=1.5), (32, 32))


@pytest.mark.backend_agnostic
def test_build_model_inserts_layers_after_preprocess():
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model

    cfg = Config()
    cfg.augment = AugmentConfig(flip=True, crop_padding=2, cutout=4)
    cfg.model.kwargs = {"filters": [4], "dense": [8]}
    info = DatasetInfo(source="test", class_names=["a", "b"], image_size=(16, 16))
    model = build_model(cfg, info)
    names = [layer.name for layer in model.layers]
    assert names[1:5] == ["preprocess", "aug_flip", "aug_crop", "aug_cutout"]
    assert jit_blockers(model) == []


# ----------------------------------------------------------------------------- mixing


def constant_batch(n=48, size=8, dtype="float32"):
    """Image i is filled with the value i (+1), label i one-hot over n classes."""
    x = np.broadcast_to((np.arange(n) + 1).reshape(n, 1, 1, 1), (n, size, size, 3)).astype(dtype)
    return x, np.eye(n, dtype="float32")


def partner(labels, i):
    """The partner index of image i from its mixed label (i itself when paired with itself)."""
    others = [j for j in np.nonzero(labels[i] > 1e-7)[0] if j != i]
    return others[0] if others else i


@pytest.mark.backend_agnostic
def test_mixup_labels_sum_to_one_and_match_images():
    x, y = constant_batch()
    out, labels = (np_(t) for t in mixing.mixup(x, y, 0.4, seed=keras.random.SeedGenerator(1)))
    assert out.shape == x.shape and labels.shape == y.shape
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    assert (labels >= 0).all() and (labels <= 1).all()
    lams = []
    for i in range(len(x)):
        j = partner(labels, i)
        lam = labels[i, i] if j != i else 1.0
        assert 0.0 <= lam <= 1.0
        np.testing.assert_allclose(out[i], lam * (i + 1) + (1 - lam) * (j + 1), rtol=1e-5)
        lams.append(lam)
    assert np.std(lams) > 0.05  # drawn per image


@pytest.mark.backend_agnostic
def test_cutmix_label_weight_is_pasted_area():
    x, y = constant_batch(n=40, size=16)
    out, labels = (np_(t) for t in mixing.cutmix(x, y, 1.0, seed=keras.random.SeedGenerator(2)))
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    fractions = []
    for i in range(len(x)):
        j = partner(labels, i)
        pasted = out[i, :, :, 0] != i + 1
        assert set(np.unique(out[i])) <= {i + 1, j + 1}  # exact pixels, no blending
        if j == i:
            continue
        fraction = pasted.mean()
        np.testing.assert_allclose(labels[i, j], fraction, atol=1e-6)
        np.testing.assert_allclose(labels[i, i], 1 - fraction, atol=1e-6)
        if pasted.any():  # the pasted part is a box
            rows, cols = np.nonzero(pasted.any(axis=1))[0], np.nonzero(pasted.any(axis=0))[0]
            assert pasted.sum() == len(rows) * len(cols)
        fractions.append(fraction)
    assert 0 < np.mean(fractions) < 1 and np.std(fractions) > 0.05


@pytest.mark.backend_agnostic
def test_mixing_keeps_uint8_and_draws_advance():
    x, y = constant_batch(n=16, dtype="uint8")
    gen = keras.random.SeedGenerator(3)
    first_x, first_y = mixing.mixup(x, y, 0.4, seed=gen)
    assert keras.backend.standardize_dtype(first_x.dtype) == "uint8"
    second_x, second_y = mixing.mixup(x, y, 0.4, seed=gen)
    assert np.abs(np_(first_y) - np_(second_y)).max() > 0
    cut_x, cut_y = mixing.cutmix(x, y, 1.0, seed=gen)
    assert keras.backend.standardize_dtype(cut_x.dtype) == "uint8"
    both_x, both_y = mixing.mix_batch(x, y, mixup_alpha=0.2, cutmix_alpha=1.0, seed=gen)
    np.testing.assert_allclose(np_(both_y).sum(axis=1), 1.0, atol=1e-6)
    same_x, same_y = mixing.mix_batch(x, y)
    np.testing.assert_array_equal(np_(same_x), x)
    np.testing.assert_array_equal(np_(same_y), y)
    # an int seed gives the same draws on every call
    np.testing.assert_array_equal(np_(mixing.mixup(x, y, 0.4, seed=5)[1]), np_(mixing.mixup(x, y, 0.4, seed=5)[1]))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.data map runs keras.ops under the TensorFlow backend")
def test_mixing_inside_tf_data_map():
    import tensorflow as tf

    x, y = constant_batch(n=40)
    gen = keras.random.SeedGenerator(4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # last batch of 8: dynamic batch size
    ds = ds.map(lambda a, b: mixing.mix_batch(a, b, mixup_alpha=0.3, cutmix_alpha=1.0, seed=gen))
    batches = [(a.numpy(), b.numpy()) for a, b in ds]
    assert [a.shape[0] for a, _ in batches] == [16, 16, 8]
    for _, labels in batches:
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    again = [b.numpy() for _, b in ds]
    assert np.abs(again[0] - batches[0][1]).max() > 0  # fresh draws on each pass


@pytest.mark.backend_agnostic  # selected by the JAX run; skipped elsewhere
@pytest.mark.skipif(BACKEND != "jax", reason="JAX PRNG keys as seeds")
def test_mixing_jitted_with_jax_key():
    import jax

    x, y = constant_batch(n=16)
    fn = jax.jit(lambda a, b, key: mixing.mix_batch(a, b, mixup_alpha=0.3, cutmix_alpha=1.0, seed=key))
    _, labels0 = fn(x, y, jax.random.PRNGKey(0))
    _, labels1 = fn(x, y, jax.random.PRNGKey(1))
    np.testing.assert_allclose(np.asarray(labels0).sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(np.asarray(labels0) - np.asarray(labels1)).max() > 0
