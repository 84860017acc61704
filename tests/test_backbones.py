"""Pretrained backbones (kerasclf.models.applications, .hub, .vit): architecture, weights sources,
offline errors.

Everything runs offline: `weights: none` builds from constructor arguments; "imagenet" is
exercised with the download functions monkeypatched (to fail like an offline download, or
to hand back a local file as a cache hit would).
Tests marked backend_agnostic also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_backbones.py -m backend_agnostic -q
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from kerasclf.config import load_config
from kerasclf.data.info import DatasetInfo
from kerasclf.errors import ConfigError, ModelError
from kerasclf.models import MODELS, _network_input_size, build_model, builder_kwargs, load_builtin_models
from kerasclf.models.hub import RESNET18_ARCH
from kerasclf.models.vit import VIT_B16_ARCH, vit_functional

keras_hub = pytest.importorskip("keras_hub")

NUM_CLASSES = 10
INFO = DatasetInfo(source="synthetic", class_names=[f"c{i}" for i in range(NUM_CLASSES)], image_size=(32, 32))
TINY_VIT = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}
TINY_VIT_HUB = {"image_shape": (32, 32, 3), **{k: v for k, v in TINY_VIT.items() if k != "image_size"}}
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "cifar10"
OFFLINE = "URL fetch failure on {}: None -- [Errno -3] Temporary failure in name resolution"


def build(name, weights="none", trainable="full", **overrides):
    if name == "vit_b16":
        overrides = {**TINY_VIT, **overrides}
    sets = [f"model.name={name}", f"model.weights={weights}", f"model.trainable={trainable}"]
    sets += [f"model.{k}={v}" for k, v in overrides.items()]
    return build_model(load_config(None, overrides=sets), INFO)


def values(model_or_layer):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model_or_layer.weights]


def assert_same_weights(a, b):
    va, vb = values(a), values(b)
    assert len(va) == len(vb)
    for x, y in zip(va, vb):
        np.testing.assert_array_equal(x, y)


def images(n=2, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, 32, 32, 3)).astype("uint8")


# --- registry and architecture -----------------------------------------------------------


def test_registered_with_preprocessing_and_sizes():
    load_builtin_models()
    meta = {name: MODELS.get(name).meta for name in ("vgg16", "resnet50", "resnet18", "vit_b16")}
    assert {n: m["preprocessing"] for n, m in meta.items()} == {
        "vgg16": "caffe",
        "resnet50": "caffe",
        "resnet18": "torch",
        "vit_b16": "tf",
    }
    assert all(m["pretrained"] for m in meta.values())
    assert meta["vgg16"]["min_size"] == meta["resnet50"]["min_size"] == meta["resnet18"]["min_size"] == 32
    assert tuple(meta["vit_b16"]["input_size"]) == (224, 224)


def test_network_input_size_override():
    assert _network_input_size({"input_size": (224, 224)}, (32, 32)) == (224, 224)
    assert _network_input_size({"input_size": (224, 224)}, (32, 32), 32) == (32, 32)
    assert _network_input_size({"input_size": (224, 224)}, (32, 32), [48, 64]) == (48, 64)
    assert _network_input_size({"min_size": 32}, (16, 24)) == (32, 48)


# Parameter counts for weights none, 32x32 inputs, 10 classes.
PARAMS = {
    "vgg16": (14_714_688, 512),  # (backbone, features into the head)
    "resnet18": (11_186_112, 512),
    "vit_b16": (7_856, 16),
}


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_structure_and_parameter_count(name):
    model = build(name)
    backbone_params, features = PARAMS[name]
    backbone = model.get_layer("backbone")
    assert "layers" in backbone.get_config()  # a plain functional model: its layers' flags are saved
    assert backbone.count_params() == backbone_params
    assert model.get_layer("head_dense").kernel.shape == (features, NUM_CLASSES)
    assert model.count_params() == backbone_params + features * NUM_CLASSES + NUM_CLASSES
    assert "resize" not in [layer.name for layer in model.layers]  # 32x32 needs no resize here
    probs = model.predict(images(), verbose=0)
    assert probs.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_resnet50_parameter_count():
    model = build("resnet50")
    assert model.get_layer("backbone").count_params() == 23_587_712
    assert model.count_params() == 23_587_712 + 2048 * NUM_CLASSES + NUM_CLASSES


def test_small_inputs_are_resized_to_min_size():
    info = DatasetInfo(source="synthetic", class_names=["a", "b"], image_size=(16, 16))
    cfg = load_config(None, overrides=["model.name=vgg16", "model.weights=none"])
    model = build_model(cfg, info)
    assert model.get_layer("resize").output.shape[1:3] == (32, 32)


def test_head_dropout_and_pooling_options():
    model = build("vgg16", head_dropout=0.5, pooling="flatten")
    names = [layer.name for layer in model.layers]
    assert "head_dropout" in names and "flatten" in names
    with pytest.raises(ModelError, match="pooling"):
        build("resnet18", pooling="mean")


def test_resnet18_matches_keras_hub_architecture():
    """weights none builds the same network as the preset's ResNetBackbone config."""
    hub = keras_hub.models.ResNetBackbone(**RESNET18_ARCH)
    assert hub.count_params() == keras_hub.models.ResNetBackbone.presets["resnet_18_imagenet"]["metadata"]["params"]
    ours = build("resnet18").get_layer("backbone")
    assert [layer.name for layer in ours.layers[1:]] == [layer.name for layer in hub.layers[1:]]


def test_vit_b16_default_size_matches_preset():
    backbone = vit_functional({"image_shape": (224, 224, 3), **VIT_B16_ARCH})
    preset = keras_hub.models.ViTBackbone.presets["vit_base_patch16_224_imagenet"]
    assert backbone.count_params() == preset["metadata"]["params"]


@pytest.mark.backend_agnostic
def test_vit_functional_computes_what_keras_hub_computes():
    hub = keras_hub.models.ViTBackbone(**TINY_VIT_HUB)
    ours = vit_functional(hub.get_config(), source=hub)
    x = np.random.RandomState(1).rand(2, 32, 32, 3).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(hub(x)), atol=1e-6)


def test_vit_imagenet_needs_default_size():
    with pytest.raises(ModelError, match="ViT-B/16 preset at 224x224"):
        build("vit_b16", weights="imagenet")


def test_vit_pooling_options():
    assert build("vit_b16", pooling="gap").get_layer("pool") is not None
    with pytest.raises(ModelError, match="token"):
        build("vit_b16", pooling="avg")


# --- weights: imagenet --------------------------------------------------------------------


def offline_get_file(*args, **kwargs):
    origin = kwargs.get("origin", args[1] if len(args) > 1 else "?")
    raise Exception(OFFLINE.format(origin))


@pytest.mark.parametrize(
    "name,fname",
    [
        ("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ],
)
def test_applications_imagenet_offline_says_what_to_do(monkeypatch, tmp_path, name, fname):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
    with pytest.raises(ModelError) as err:
        build(name, weights="imagenet")
    text = str(err.value)
    assert "\n" not in text
    assert fname in text
    assert "https://storage.googleapis.com/tensorflow/keras-applications/" in text
    assert f"--set model.weights=/path/to/{fname}" in text
    assert "URL fetch failure" in text
    assert not list((tmp_path / "keras").rglob("*.h5"))


def test_applications_imagenet_uses_cached_file(monkeypatch, tmp_path):
    donor = build("vgg16").get_layer("backbone")
    cached = tmp_path / "vgg16_notop.weights.h5"
    donor.save_weights(cached)
    calls = []

    def cache_hit(fname, origin=None, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(cached)

    monkeypatch.setattr(keras.utils, "get_file", cache_hit)
    model = build("vgg16", weights="imagenet")
    assert calls[0][0] == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert calls[0][1].endswith("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert calls[0][2]["cache_subdir"] == "models" and calls[0][2]["file_hash"]
    assert_same_weights(model.get_layer("backbone"), donor)


@pytest.mark.parametrize(
    "name,preset", [("resnet18", "resnet_18_imagenet"), ("vit_b16", "vit_base_patch16_224_imagenet")]
)
def test_keras_hub_imagenet_offline_says_what_to_do(monkeypatch, tmp_path, name, preset):
    import kagglehub
    import requests

    def offline(handle, path=None, **kwargs):
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded (NameResolutionError)"
        )

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setattr(kagglehub, "model_download", offline)
    with pytest.raises(ModelError) as err:
        # vit_b16 at its real size (32x32 data resized to 224): the download fails before
        # anything big is built.
        build_model(load_config(None, overrides=[f"model.name={name}", "model.weights=imagenet"]), INFO)
    text = str(err.value)
    assert "\n" not in text
    assert f"'{preset}'" in text
    handle = (keras_hub.models.ResNetBackbone if name == "resnet18" else keras_hub.models.ViTBackbone).presets[preset][
        "kaggle_handle"
    ]
    assert handle in text
    assert f"--set model.weights=/path/to/{preset}" in text
    assert "ConnectionError" in text
    assert not (tmp_path / "kagglehub").exists() or not any((tmp_path / "kagglehub").rglob("*"))


def test_keras_hub_imagenet_uses_cached_preset(monkeypatch, tmp_path):
    """A kagglehub cache hit: the preset's files come back from disk, no network."""
    import kagglehub

    small = {**RESNET18_ARCH, "stackwise_num_blocks": [1, 1, 1, 1]}
    donor = keras_hub.models.ResNetBackbone(**small)
    preset_dir = tmp_path / "resnet_18_imagenet"
    donor.save_to_preset(str(preset_dir))
    handles = []

    def cache_hit(handle, path=None, **kwargs):
        handles.append(handle)
        return str(preset_dir / path) if path else str(preset_dir)

    monkeypatch.setattr(kagglehub, "model_download", cache_hit)
    model = build("resnet18", weights="imagenet")
    assert set(handles) == {"keras/resnetv1/keras/resnet_18_imagenet/3"}
    assert_same_weights(model.get_layer("backbone"), donor)


# --- weights: local files -----------------------------------------------------------------


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name", ["vgg16", "resnet18", "vit_b16"])
def test_local_backbone_weights_file(tmp_path, name):
    donor = build(name).get_layer("backbone")
    path = tmp_path / "backbone.weights.h5"
    donor.save_weights(path)
    model = build(name, weights=str(path))
    assert_same_weights(model.get_layer("backbone"), donor)


def test_applications_legacy_notop_h5_file(tmp_path):
    """The file keras.applications downloads is a legacy (Keras 2) HDF5 weights file."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    donor = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, donor)
    assert_same_weights(build("vgg16", weights=str(path)).get_layer("backbone"), donor)


def test_resnet18_keras_hub_weights_file(tmp_path):
    """The model.weights.h5 of a KerasHub ResNet preset loads as a plain file too."""
    hub = keras_hub.models.ResNetBackbone(**RESNET18_ARCH)
    path = tmp_path / "model.weights.h5"
    hub.save_weights(path)
    assert_same_weights(build("resnet18", weights=str(path)).get_layer("backbone"), hub)


def test_vit_keras_hub_weights_file(tmp_path):
    hub = keras_hub.models.ViTBackbone(**TINY_VIT_HUB)
    path = tmp_path / "model.weights.h5"
    hub.save_weights(path)
    ours = build("vit_b16", weights=str(path)).get_layer("backbone")
    assert_same_weights(ours, vit_functional(hub.get_config(), source=hub))


@pytest.mark.parametrize("name", ["resnet18", "vit_b16"])
def test_keras_hub_preset_directory(tmp_path, name):
    if name == "resnet18":
        hub = keras_hub.models.ResNetBackbone(**RESNET18_ARCH)
        expected = hub
    else:
        hub = keras_hub.models.ViTBackbone(**TINY_VIT_HUB)
        expected = vit_functional(hub.get_config(), source=hub)
    hub.save_to_preset(str(tmp_path / "preset"))
    model = build(name, weights=str(tmp_path / "preset"))
    assert_same_weights(model.get_layer("backbone"), expected)


def test_vit_preset_directory_of_other_size(tmp_path):
    hub = keras_hub.models.ViTBackbone(**{**TINY_VIT_HUB, "image_shape": (48, 48, 3)})
    hub.save_to_preset(str(tmp_path / "preset"))
    with pytest.raises(ModelError, match=r"model.image_size=\[48, 48\]"):
        build("vit_b16", weights=str(tmp_path / "preset"))


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "vit_b16"])
def test_missing_weights_file(tmp_path, name):
    with pytest.raises(ConfigError, match="nope.weights.h5', which does not exist"):
        build(name, weights=str(tmp_path / "nope.weights.h5"))


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "vit_b16"])
def test_wrong_weights_file(tmp_path, name):
    other = "vit_b16" if name != "vit_b16" else "resnet18"
    path = tmp_path / "other.weights.h5"
    build(other).get_layer("backbone").save_weights(path)
    with pytest.raises(ModelError, match="Could not load backbone weights"):
        build(name, weights=str(path))


def test_missing_keras_hub_preset_directory_contents(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="preset directory"):
        build("resnet18", weights=str(tmp_path / "empty"))


# --- configs ------------------------------------------------------------------------------

EXPERIMENTS = {
    "vgg16_last2": ("vgg16", "last:2", 30),
    "vgg16_last3": ("vgg16", "last:3", 30),
    "vgg16_last5": ("vgg16", "last:5", 30),
    "resnet18_sgd_full": ("resnet18", "full", None),
    "resnet18_adam_full": ("resnet18", "full", None),
    "resnet18_sgd_frozen": ("resnet18", "head", None),
    "resnet18_adam_frozen": ("resnet18", "head", None),
    "vit_full": ("vit_b16", "full", 3),
    "vit_head": ("vit_b16", "head", 3),
}


@pytest.mark.parametrize("stem", sorted(EXPERIMENTS))
def test_experiment_configs_load(stem):
    cfg = load_config(CONFIGS / f"{stem}.yaml")
    name, trainable, epochs = EXPERIMENTS[stem]
    assert cfg.name == stem
    assert (cfg.model.name, cfg.model.trainable, cfg.model.weights) == (name, trainable, "imagenet")
    assert cfg.data.source == "cifar10"
    if epochs:
        assert cfg.train.epochs == epochs
    assert cfg.optim.name == ("adam" if "adam" in stem or "vit" in stem else "sgd")
    builder_kwargs(cfg.model)
