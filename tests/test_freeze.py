"""Freeze policies (kerasclf.models.freeze): which layers train for full / head / last:N /
from:<name>, that frozen weights stay bit-identical through a fit, that frozen BatchNorm
runs in inference mode, and that the flags survive save + safe-mode reload.

Expectations are written out by layer name per backbone, and parameter counts are summed
here from those layers' own variables (not with the module's helpers).
Tests marked backend_agnostic also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_freeze.py -m backend_agnostic -q
"""

import keras
import numpy as np
import pytest

from kerasclf.config import load_config
from kerasclf.data.info import DatasetInfo
from kerasclf.errors import ConfigError
from kerasclf.models import build_model
from kerasclf.models.freeze import apply_trainable, describe_trainable, parse_trainable, weight_layer_names

NUM_CLASSES = 10
INFO = DatasetInfo(source="synthetic", class_names=[f"c{i}" for i in range(NUM_CLASSES)], image_size=(32, 32))
TINY_VIT = [
    "model.image_size=32",
    "model.patch_size=8",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.hidden_dim=16",
    "model.mlp_dim=32",
]
EXTRA = {"vit_b16": TINY_VIT}

VGG_CONVS = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for c in range(1, n + 1)]
R18_LAST_BLOCK = ["stack3_block1_1_conv", "stack3_block1_1_bn", "stack3_block1_2_conv", "stack3_block1_2_bn"]

# (model, policy, names of the layers that must train). BatchNorm/LayerNorm layers are
# listed with the weight layer whose output they normalize.
CASES = [
    ("vgg16", "full", VGG_CONVS + ["head_dense"]),
    ("vgg16", "head", ["head_dense"]),
    ("vgg16", "last:2", ["block5_conv3", "head_dense"]),
    ("vgg16", "last:3", ["block5_conv2", "block5_conv3", "head_dense"]),
    ("vgg16", "last:5", ["block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3", "head_dense"]),
    ("vgg16", "from:block5_conv1", ["block5_conv1", "block5_conv2", "block5_conv3", "head_dense"]),
    ("resnet18", "head", ["head_dense"]),
    ("resnet18", "last:2", ["stack3_block1_2_conv", "stack3_block1_2_bn", "head_dense"]),
    ("resnet18", "last:3", R18_LAST_BLOCK + ["head_dense"]),
    # The block's shortcut conv (0_conv) comes before its 2_conv in topological order, so
    # last:4 reaches 2_conv but not the shortcut; 0_bn follows 0_conv, not its position.
    ("resnet18", "last:4", ["stack3_block0_2_conv", "stack3_block0_2_bn"] + R18_LAST_BLOCK + ["head_dense"]),
    (
        "resnet18",
        "from:stack3_block0_0_conv",
        ["stack3_block0_0_conv", "stack3_block0_0_bn", "stack3_block0_2_conv", "stack3_block0_2_bn"]
        + R18_LAST_BLOCK
        + ["head_dense"],
    ),
    ("vit_b16", "head", ["head_dense"]),
    ("vit_b16", "last:2", ["transformer_block_2", "encoder_norm", "head_dense"]),
    (
        "vit_b16",
        "from:transformer_block_1",
        ["transformer_block_1", "transformer_block_2", "encoder_norm", "head_dense"],
    ),
    ("vit_b16", "full", ["patch_embedding", "transformer_block_1", "transformer_block_2", "encoder_norm", "head_dense"]),
]
SLOW_CASES = [
    ("resnet50", "head", ["head_dense"]),
    ("resnet50", "last:2", ["conv5_block3_3_conv", "conv5_block3_3_bn", "head_dense"]),
    (
        "resnet50",
        "from:conv5_block3_1_conv",
        [f"conv5_block3_{i}_{k}" for i in (1, 2, 3) for k in ("conv", "bn")] + ["head_dense"],
    ),
]


def build(name, trainable="full", **overrides):
    sets = [f"model.name={name}", "model.weights=none", f"model.trainable={trainable}"] + EXTRA.get(name, [])
    sets += [f"model.{k}={v}" for k, v in overrides.items()]
    return build_model(load_config(None, overrides=sets), INFO)


def leaves(model):
    """(layer) for every layer, nested models flattened -- written independently here."""
    out = []
    for layer in model.layers:
        out += leaves(layer) if isinstance(layer, keras.Model) else [layer]
    return out


def learnable(layer):
    """The variables a layer would train: everything but BatchNorm statistics."""
    return [v for v in layer.weights if "moving_" not in v.path]


def n_params(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def layer_of(model):
    """id(variable) -> name of the leaf layer that owns it."""
    return {id(v): layer.name for layer in leaves(model) for v in layer.weights}


def images_and_labels(n=8, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, 32, 32, 3)).astype("uint8"), rng.randint(0, NUM_CLASSES, n)


def snapshot(model):
    return [(v, np.array(keras.ops.convert_to_numpy(v))) for v in model.weights]


def fit_briefly(model, steps=2):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    x, y = images_and_labels(4 * steps)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)


def check_trainable_set(model, expected_names):
    by_name = {layer.name: layer for layer in leaves(model)}
    missing = set(expected_names) - set(by_name)
    assert not missing, f"expected layers not in model: {missing}"
    expected = {id(v) for name in expected_names for v in learnable(by_name[name])}
    got = {id(v) for v in model.trainable_weights}
    owner = layer_of(model)
    assert got == expected, (
        f"extra: {sorted({owner[i] for i in got - expected})}, missing: {sorted({owner[i] for i in expected - got})}"
    )
    return n_params(v for name in expected_names for v in learnable(by_name[name]))


def check_fit_moves_exactly(model, expected_names):
    before = snapshot(model)
    fit_briefly(model)
    owner = layer_of(model)
    for v, old in before:
        new = np.array(keras.ops.convert_to_numpy(v))
        name = owner[id(v)]
        if name not in expected_names:
            assert np.array_equal(old, new), f"frozen {v.path} changed"
        elif "moving_" not in v.path:
            assert not np.array_equal(old, new), f"trainable {v.path} did not move"


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name,policy,expected", CASES, ids=[f"{m}-{p}" for m, p, _ in CASES])
def test_policy_trains_exactly_the_expected_layers(name, policy, expected):
    model = build(name, policy)
    params = check_trainable_set(model, expected)
    summary = describe_trainable(model)
    assert summary["params_trainable"] == params
    assert summary["params_total"] == n_params(model.weights)
    assert summary["params_non_trainable"] == summary["params_total"] - params
    weight_expected = [n for n in expected if not n.endswith("_bn") and n != "encoder_norm"]
    assert summary["trainable_weight_layers"] == len(weight_expected)
    check_fit_moves_exactly(model, set(expected))


@pytest.mark.slow
@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name,policy,expected", SLOW_CASES, ids=[f"{m}-{p}" for m, p, _ in SLOW_CASES])
def test_policy_resnet50(name, policy, expected):
    model = build(name, policy)
    params = check_trainable_set(model, expected)
    assert describe_trainable(model)["params_trainable"] == params
    check_fit_moves_exactly(model, set(expected))


def test_apply_returns_summary_and_weight_layer_counts():
    model = build("vgg16")
    summary = apply_trainable(model, "last:3")
    assert summary["trainable"] == "last:3"
    assert summary["weight_layers"] == 14  # 13 convs + head_dense
    assert summary["trainable_weight_layers"] == 3
    assert summary["frozen_layers"] == [f"backbone/{n}" for n in VGG_CONVS[:-2]]
    assert weight_layer_names(model)[-3:] == ["backbone/block5_conv2", "backbone/block5_conv3", "head_dense"]
    # Re-applying another policy starts from scratch (nothing stays frozen from before).
    assert apply_trainable(model, "full")["params_trainable"] == n_params(model.weights)
    assert apply_trainable(model, "head")["params_trainable"] == 512 * NUM_CLASSES + NUM_CLASSES


def test_resnet18_norm_layers_are_not_weight_layers():
    model = build("resnet18")
    names = weight_layer_names(model)
    assert not [n for n in names if n.endswith("_bn")]
    assert len(names) == 21  # 17 convs + 3 shortcut convs + head_dense
    assert describe_trainable(model)["weight_layers"] == 21


@pytest.mark.backend_agnostic
def test_frozen_batchnorm_keeps_moving_statistics():
    # last:2 trains stack3_block1_2_conv and its BN; the BN before it is frozen.
    model = build("resnet18", "last:2")
    backbone = model.get_layer("backbone")
    frozen_bn, trained_bn = backbone.get_layer("stack3_block1_1_bn"), backbone.get_layer("stack3_block1_2_bn")
    assert not frozen_bn.trainable and trained_bn.trainable
    frozen_before = keras.ops.convert_to_numpy(frozen_bn.moving_mean).copy()
    trained_before = keras.ops.convert_to_numpy(trained_bn.moving_mean).copy()
    fit_briefly(model)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen_bn.moving_mean), frozen_before)
    assert not np.array_equal(keras.ops.convert_to_numpy(trained_bn.moving_mean), trained_before)


@pytest.mark.backend_agnostic
def test_frozen_batchnorm_runs_in_inference_mode():
    model = build("resnet18", "head")
    bn = model.get_layer("backbone").get_layer("conv1_bn")
    x = keras.random.normal((4, 8, 8, 64), seed=1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn(x, training=True)), keras.ops.convert_to_numpy(bn(x, training=False)), atol=1e-6
    )


@pytest.mark.backend_agnostic
@pytest.mark.parametrize(
    "name,policy",
    [("vit_b16", "head"), ("vit_b16", "last:2"), ("resnet18", "last:3"), ("vgg16", "from:block5_conv2")],
)
def test_trainability_survives_save_and_safe_reload(tmp_path, name, policy):
    model = build(name, policy)
    x, _ = images_and_labels(4, seed=3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert describe_trainable(loaded) == describe_trainable(model)
    assert sorted(v.path for v in loaded.trainable_weights) == sorted(v.path for v in model.trainable_weights)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The reloaded model trains exactly what the original did.
    expected = {layer.name for layer in leaves(model) if layer.trainable and learnable(layer)}
    check_fit_moves_exactly(loaded, expected & {layer.name for layer in leaves(loaded)})


def test_describe_infers_policy():
    model = build("vgg16")
    assert describe_trainable(model)["trainable"] == "full"
    apply_trainable(model, "from:block5_conv1")
    assert describe_trainable(model)["trainable"] == "last:4"
    apply_trainable(model, "head")
    assert describe_trainable(model)["trainable"] == "head"
    model.get_layer("backbone").get_layer("block1_conv1").trainable = True
    assert describe_trainable(model)["trainable"] == "custom"


def test_from_accepts_paths_and_submodels():
    model = build("vgg16")
    assert apply_trainable(model, "from:backbone/block5_conv3")["trainable_weight_layers"] == 2
    assert apply_trainable(model, "from:backbone")["trainable_weight_layers"] == 14
    assert apply_trainable(model, "from:head_dense")["trainable_weight_layers"] == 1


def test_unknown_from_layer_names_the_closest():
    model = build("vgg16")
    with pytest.raises(ConfigError, match='no layer named .block5_cnv1.* Did you mean "block5_conv1"'):
        apply_trainable(model, "from:block5_cnv1")


@pytest.mark.parametrize("spec", ["partial", "last:0", "last:x", "last", "from:", "", "head:2", "Full"])
def test_bad_spec_lists_valid_forms(spec):
    with pytest.raises(ConfigError, match=r"full .*head .*last:N .*from:<layer_name>"):
        parse_trainable(spec)


def test_parse_trainable():
    assert parse_trainable("full") == ("full", None)
    assert parse_trainable(None) == ("full", None)
    assert parse_trainable("last:5") == ("last", 5)
    assert parse_trainable("from: block5_conv1") == ("from", "block5_conv1")


def test_last_n_larger_than_model():
    with pytest.raises(ConfigError, match="only 14 weight layers"):
        build("vgg16", "last:20")


def test_bad_spec_fails_when_the_config_loads():
    with pytest.raises(ConfigError, match="model.trainable must be full"):
        build("vgg16", "everything")


def test_head_needs_head_layers():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Dense(3, name="hidden")(inputs)))
    with pytest.raises(ConfigError, match="no head layers"):
        apply_trainable(model, "head")
    assert apply_trainable(model, "last:1")["params_trainable"] == 8


def test_preactivation_norm_follows_next_weight_layer():
    # A norm right after the input has no producing weight layer: it follows the next one.
    inputs = keras.Input((4,))
    x = keras.layers.LayerNormalization(name="pre_norm")(inputs)
    x = keras.layers.Dense(3, name="hidden")(x)
    x = keras.layers.BatchNormalization(name="hidden_bn")(keras.layers.Activation("relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head_dense")(x))
    def trained():
        return {layer.name for layer in model.layers if layer.trainable and layer.weights}

    apply_trainable(model, "last:1")
    assert trained() == {"head_dense"}
    apply_trainable(model, "last:2")  # hidden_bn follows hidden (its producer); pre_norm follows hidden (next)
    assert trained() == {"pre_norm", "hidden", "hidden_bn", "head_dense"}
