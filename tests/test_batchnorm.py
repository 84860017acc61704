"""BatchNorm settings of the registered models (`bn_momentum`, `bn_epsilon` builder keys).

The moving statistics are what a BN model uses at inference. Keras's default momentum
(0.99) moves them 1% of the way to a batch's statistics per step, which left `make demo`'s
validation accuracy tens of points under its training accuracy for most of the run, and
the Dogs vs Cats study's catsdogs_cnn at 65% test on the real copy (issue 19). Every
registered model takes kerasclf's default (kerasclf.models.batchnorm) unless its
registration states why not: a contract over the registry, so a new model is covered.
"""

import keras
import numpy as np
import pytest
from conftest import assert_user_error
from keras import ops

from kerasclf.config import from_dict
from kerasclf.data.info import DatasetInfo
from kerasclf.errors import ConfigError
from kerasclf.models import build_model
from kerasclf.models.batchnorm import BN_MOMENTUM, batchnorm_layers
from kerasclf.registry import MODELS

BN_MODELS = {
    "cnn": {"name": "cnn", "filters": [8], "dense": [16], "batch_norm": True},
    "resnet9": {"name": "resnet9", "width": 4},
    "catsdogs_cnn": {"name": "catsdogs_cnn", "filters": [8, 8, 8], "dense": [16, 8]},
}
# Builds for the registry contract: small where the builder allows, BatchNorm switched on.
CONTRACT_BUILDS = {
    "cnn": {"filters": [8], "dense": [16], "batch_norm": True},
    "resnet9": {"width": 4},
    "catsdogs_cnn": {"filters": [8, 8, 8], "dense": [16, 8]},
    "airbench": {"widths": [8, 16, 16], "whiten_from": "none"},
    "mlp": {"units": [8]},
    "vit_b16": {"image_size": 32, "patch_size": 8, "num_layers": 1, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 16},
}
FULL_SIZE = {"resnet18", "resnet50", "vgg16", "vit_b16"}  # seconds to build: the slow suite


def _model(spec, **keys):
    cfg = from_dict({"model": {**spec, **keys}})
    info = DatasetInfo("synthetic", ["a", "b"], (16, 16), 3, [100.0] * 3, [50.0] * 3)
    return build_model(cfg, info)


def _first_bn(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))


def _fraction_moved(model, images):
    """How far one training-mode forward pass moves the first BN layer's moving mean, as a
    fraction of the way from its start (0) to the batch's mean."""
    bn = _first_bn(model)
    features = keras.Model(model.inputs, bn.input)(images, training=False)
    batch_mean = np.mean(ops.convert_to_numpy(features), axis=(0, 1, 2))
    model(images, training=True)
    moved = ops.convert_to_numpy(bn.moving_mean)
    big = np.abs(batch_mean) > 1e-2  # channels whose mean is far enough from 0 to measure
    return float(np.median(moved[big] / batch_mean[big]))


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(8, 16, 16, 3)).astype("uint8")


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("model_name", sorted(BN_MODELS))
def test_default_moving_statistics_follow_a_batch_at_pytorch_rate(model_name, images):
    """Default: one step moves the moving mean 10% of the way (PyTorch's momentum 0.1), not Keras's 1%."""
    keras.utils.set_random_seed(0)
    fraction = _fraction_moved(_model(BN_MODELS[model_name]), images)
    assert fraction == pytest.approx(0.1, abs=0.01)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("model_name", sorted(BN_MODELS))
def test_bn_momentum_key_sets_the_update_rate(model_name, images):
    keras.utils.set_random_seed(0)
    fraction = _fraction_moved(_model(BN_MODELS[model_name], bn_momentum=0.6), images)
    assert fraction == pytest.approx(0.4, abs=0.01)


@pytest.mark.backend_agnostic
def test_bn_epsilon_key_reaches_inference_normalisation(images):
    """At inference BN divides by sqrt(moving_variance + epsilon): with the moving variance at
    its initial 1, epsilon=3 halves the first BN layer's output (relative to epsilon ~0)."""
    outputs = []
    for eps in (1e-8, 3.0):
        keras.utils.set_random_seed(0)
        model = _model(BN_MODELS["cnn"], bn_epsilon=eps)
        bn = _first_bn(model)
        outputs.append(ops.convert_to_numpy(keras.Model(model.inputs, bn.output)(images, training=False)))
    np.testing.assert_allclose(outputs[1], outputs[0] / 2.0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("keys", [{"bn_momentum": 1.0}, {"bn_momentum": -0.1}, {"bn_epsilon": 0.0}])
def test_out_of_range_bn_keys_are_config_errors(keys):
    with pytest.raises(ConfigError, match="bn_"):
        _model(BN_MODELS["cnn"], **keys)


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_bn_cnn_validation_tracks_training_after_two_epochs(tmp_path):
    """The `make demo` symptom: with the defaults, after two epochs on digits the BN CNN's
    validation accuracy (moving statistics) is within 10 points of its training accuracy.
    With Keras's 0.99 it was 30-60 points below."""
    from kerasclf.training.run import train

    cfg = from_dict(
        {
            "seed": 0,
            "data": {"source": "digits", "batch_size": 64, "val_fraction": 0.2},
            "model": {"name": "cnn", "filters": [16, 32], "dense": [64], "batch_norm": True},
            "optim": {"name": "adam", "lr": 0.002},
            "train": {"epochs": 2, "log_dir": str(tmp_path), "evaluate_after": False, "verbose": 0},
        }
    )
    _, metrics = train(cfg)
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.glob("*/history.csv")))))
    last = rows[-1]
    assert float(last["accuracy"]) > 0.8  # it learned
    assert float(last["val_accuracy"]) > float(last["accuracy"]) - 0.10


def _registered():
    return [pytest.param(n, marks=pytest.mark.slow) if n in FULL_SIZE else n for n in MODELS.names()]


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name", _registered())
def test_every_registered_model_uses_the_default_momentum_or_states_why(name):
    """Every BatchNorm layer of every registered model (nested backbones included) has
    momentum BN_MOMENTUM; a model that differs registers `bn_momentum_reason` and then uses
    its builder's stated default. Keras's 0.99, left by a builder that forgot the key (as
    catsdogs_cnn and keras.applications' ResNet-50 did), fails here."""
    import inspect

    if name in ("resnet18", "vit_b16"):
        pytest.importorskip("keras_hub")
    entry = MODELS.get(name)
    info = DatasetInfo("synthetic", ["a", "b"], (32, 32), 3, [100.0] * 3, [50.0] * 3)
    model = build_model(from_dict({"model": {"name": name, **CONTRACT_BUILDS.get(name, {})}}), info)
    momenta = sorted({round(float(layer.momentum), 6) for layer in batchnorm_layers(model)})
    reason = entry.meta.get("bn_momentum_reason")
    if reason is None:
        assert momenta in ([], [BN_MOMENTUM]), (
            f"{name}: BatchNorm momentum {momenta}; use kerasclf.models.batchnorm's default or register "
            "bn_momentum_reason"
        )
    else:
        assert len(reason.split()) >= 5, f"{name}: bn_momentum_reason should say why"
        stated = inspect.signature(entry.factory).parameters["bn_momentum"].default
        assert momenta == [round(float(stated), 6)]
        assert str(stated) in reason, f"{name}: the reason should name the momentum it uses ({stated})"


def test_the_contract_covers_every_model_that_has_batchnorm_builds():
    """Models whose BatchNorm only exists with a key switched on need that key in CONTRACT_BUILDS."""
    import inspect

    for name in MODELS.names():
        params = inspect.signature(MODELS.get(name).factory).parameters
        if "batch_norm" in params:
            assert CONTRACT_BUILDS.get(name, {}).get("batch_norm") is True, name


@pytest.mark.parametrize("sets,refused", [
    # the optimizer study's first network: BatchNorm after every conv AND dense layer, SGD batch 1
    (["model.name=cnn", "model.filters=[8]", "model.dense=[16]", "model.batch_norm=true", "data.batch_size=1"], True),
    (["model.name=cnn", "model.filters=[8]", "model.dense=[16]", "model.batch_norm=true", "data.batch_size=2"], False),
    (["model.name=cnn", "model.filters=[8]", "model.dense=[16]", "model.batch_norm=false", "data.batch_size=1"], False),
    (["model.name=catsdogs_cnn", "data.batch_size=1"], False),  # BatchNorm on convolutions only: learns from one image
])
def test_one_image_per_batch_is_refused_only_where_a_dense_batchnorm_would_output_a_constant(cli, sets, refused):
    args = [a for s in ["data.source=synthetic", *sets] for a in ("--set", s)]
    result = cli("train", "--dry-run", *args)
    if refused:
        assert_user_error(result, "data.batch_size=1", "dense", "model.batch_norm=false")
    else:
        assert result.exit_code == 0, result.output


def test_a_dense_batchnorm_fed_one_image_really_outputs_a_constant():
    """The fact the refusal rests on, in Keras itself: training-mode BatchNorm over a batch of one
    maps any input to its beta (0), so no gradient reaches the layer below."""
    import numpy as np

    bn = keras.layers.BatchNormalization()
    out = keras.ops.convert_to_numpy(bn(np.array([[3.0, -7.0, 0.5]], "float32"), training=True))
    np.testing.assert_allclose(out, np.zeros((1, 3)), atol=1e-3)
    conv_bn = keras.layers.BatchNormalization()
    image = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32")
    assert np.abs(keras.ops.convert_to_numpy(conv_bn(image, training=True))).max() > 0.5  # spatial axes: still varies
