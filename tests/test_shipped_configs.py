"""Every shipped config loads, and its augmentation keeps XLA compilation on."""

from pathlib import Path

import keras
import numpy as np
import pytest

from kerasclf.config import load_config
from kerasclf.data.info import DatasetInfo
from kerasclf.layers.augment import build_augmentation
from kerasclf.layers.jit import jit_blockers
from kerasclf.models import build_model, builder_kwargs

# configs/studies/ holds sweep definitions, not experiment configs (tested in test_sweep.py)
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml") if p.parent.name != "studies")
# Networks small enough to build whole in a test (pretrained backbones are covered by
# their own tests; here only their augmentation matters).
SMALL_MODELS = {"mlp", "cnn", "resnet9", "airbench"}


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_augmentation_compiles_with_xla(path):
    cfg = load_config(path)
    builder_kwargs(cfg.model)  # model keys are valid for the model
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for layer in build_augmentation(cfg.augment, (32, 32), seed=0):
        x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert jit_blockers(model) == []
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is True
    model.fit(np.zeros((8, 32, 32, 3), "float32"), np.zeros(8, "int32"), batch_size=4, epochs=1, verbose=0)
    assert model.jit_compile is True  # Keras turns it off on the first fit when a layer cannot compile


@pytest.mark.backend_agnostic
@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if load_config(p).model.name in SMALL_MODELS], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_small_config_models_have_no_jit_blockers(path):
    cfg = load_config(path)
    info = DatasetInfo(source="synthetic", class_names=[str(i) for i in range(10)], image_size=(32, 32))
    model = build_model(cfg, info)
    assert jit_blockers(model) == []
