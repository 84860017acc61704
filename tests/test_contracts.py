"""Contract tests over every registry entry (the way timm's tests/test_models.py covers every model).

Every model builds with the named outputs, its weight-layer count equals the count its
architecture's papers give, it survives a safe-mode save and reload with the same
predictions, and `trainable: head` leaves only the head trainable. Every data set yields
what it declares; every loss is finite on a random batch; every optimizer and schedule builds
and steps; every report section renders. A new entry is covered without a new test.
"""

import numpy as np
import pytest

from kerasclf.config import from_dict
from kerasclf.data.info import DatasetInfo
from kerasclf.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, REPORT_SECTIONS, SCHEDULES

pytestmark = pytest.mark.backend_agnostic

INFO = DatasetInfo(source="synthetic", class_names=["a", "b", "c"], image_size=(32, 32))
# Small but faithful builds of the large networks (same layer structure, fewer channels where
# the builder allows it; ViT with 2 blocks).
SMALL = {
    "vit_b16": {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32},
    "airbench": {"widths": [8, 16, 16], "whiten_from": "none"},
    "resnet9": {"width": 8},
    "cnn": {"filters": [8, 16], "dense": [16]},
    "mlp": {"units": [16, 8]},
}
# Weight layers (layers with trainable weights, normalization excluded; the head counts) as
# the architectures define them for the builds above.
PAPER_WEIGHT_LAYERS = {
    "mlp": 2 + 1,  # two hidden dense layers + the head
    "cnn": 2 * 2 + 1 + 1,  # convs_per_block=2 over 2 blocks, 1 dense, head
    "resnet9": 8 + 1,  # the Myrtle ResNet-9: 8 convolutions + the linear head
    "airbench": 1 + 6 + 1,  # whitening conv, 3 blocks of 2 convs, head
    "vgg16": 13 + 1,  # VGG16's 13 convolutions (its 3 dense layers replaced by the head)
    "resnet50": 49 + 4 + 1,  # 49 main-path convs + 4 projection shortcuts + head
    "resnet18": 17 + 3 + 1,  # 17 main-path convs + 3 projection shortcuts + head
    "vit_b16": 1 + 2 + 1,  # patch embedding + 2 encoder blocks (SMALL) + head
    "catsdogs_cnn": 3 + 2 + 1,  # the Dogs vs Cats study's 3 convolutions and 3 dense layers (the head is the third)
    # stem conv + block 0 (depthwise, project) + 15 blocks x (expand, depthwise, project) + top conv + head
    "efficientnet_lite0": 1 + 2 + 15 * 3 + 1 + 1,
    # the same over MobileNetV2's 17 blocks: the "53 layers deep" of the paper's table
    "mobilenet_v2": 1 + 2 + 16 * 3 + 1 + 1,
}


def build(name, **overrides):
    from kerasclf.models import build_model

    pytest.importorskip("keras_hub") if name in ("resnet18", "vit_b16") else None
    model_cfg = {"name": name, **SMALL.get(name, {}), **overrides}
    return build_model(from_dict({"model": model_cfg}), INFO)


def test_every_model_has_a_paper_count():
    assert set(MODELS.names()) <= set(PAPER_WEIGHT_LAYERS), "add the new model's weight-layer count above"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name, tmp_path):
    from kerasclf.checkpoint import load_checkpoint
    from kerasclf.models import embedding_model
    from kerasclf.models.freeze import apply_trainable, describe_trainable

    model = build(name)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    embedding = np.asarray(embedding_model(model).predict(x, verbose=0))
    assert embedding.ndim == 2 and embedding.shape[0] == 2
    # the head is a function of the embedding alone
    head = model.get_layer("head_dense")
    assert head.kernel.shape[0] == embedding.shape[1]

    assert describe_trainable(model)["weight_layers"] == PAPER_WEIGHT_LAYERS[name]

    model.save(tmp_path / "m.keras")
    reloaded, labels = load_checkpoint(tmp_path / "m.keras")
    assert labels.class_names == ["a", "b", "c"]
    np.testing.assert_allclose(np.asarray(reloaded.predict(x, verbose=0)), probs, atol=1e-5)

    summary = apply_trainable(model, "head")
    trainable = {id(v) for v in model.trainable_weights}
    head_vars = {id(v) for layer in model._flatten_layers() if layer.name.startswith("head_") for v in layer.trainable_weights}
    assert trainable == head_vars and summary["trainable_weight_layers"] == 1


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n in ("digits", "synthetic")])
def test_offline_data_sets_yield_what_they_declare(name):
    from kerasclf.config import DataConfig
    from kerasclf.data import build_dataset

    data = build_dataset(DataConfig(source=name, val_fraction=0.2), seed=0)
    for split in (data.train, data.val):
        assert split.x.dtype == np.uint8 and split.x.ndim == 4 and split.x.shape[-1] == 3
        assert split.x.shape[1:3] == tuple(data.info.image_size)
        assert split.y.min() >= 0 and split.y.max() < data.info.num_classes
    assert len(set(data.train.y.tolist())) == data.info.num_classes


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_every_loss_is_finite_and_lower_for_the_right_class(name, smoothing):
    import keras

    from kerasclf.losses import build_loss

    cfg = from_dict({"loss": {"name": name, "label_smoothing": smoothing}})
    loss, labels = build_loss(cfg)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 16)
    targets = np.eye(5, dtype="float32")[y] if labels == "one_hot" else y
    good = np.full((16, 5), 0.02, "float32")
    good[np.arange(16), y] = 0.92
    bad = np.roll(good, 1, axis=1)
    good_loss = float(keras.ops.convert_to_numpy(loss(targets, good)))
    bad_loss = float(keras.ops.convert_to_numpy(loss(targets, bad)))
    assert np.isfinite(good_loss) and np.isfinite(bad_loss) and good_loss < bad_loss


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
@pytest.mark.parametrize("schedule", SCHEDULES.names())
def test_every_optimizer_and_schedule_steps_downhill(optimizer, schedule):
    """One config per pair: the optimizer minimises a quadratic under the schedule."""
    import keras

    from kerasclf.training.optimizers import build_optimizer

    cfg = from_dict({"optim": {"name": optimizer, "schedule": schedule, "lr": 0.05}, "train": {"epochs": 4}})
    opt = build_optimizer(cfg.optim, steps_per_epoch=5, epochs=4)
    w = keras.Variable(np.array([3.0, -2.0], "float32"))
    start = float(np.sum(keras.ops.convert_to_numpy(w) ** 2))
    for _ in range(20):
        grad = 2 * w.value
        opt.apply_gradients([(grad, w)])
    assert float(np.sum(keras.ops.convert_to_numpy(w) ** 2)) < start


@pytest.mark.parametrize("name", REPORT_SECTIONS.names())
def test_every_report_section_renders_lines(name, tmp_path):
    from kerasclf.evaluation.metrics import classification_summary
    from kerasclf.evaluation.sections import ReportContext

    y_true, y_pred = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1])
    summary = classification_summary(y_true, y_pred, ["a", "b", "c"])
    metrics = {"macro_auc": 0.9, "f1_macro": 0.5}
    ctx = ReportContext(out=tmp_path, title="t", split="test", summary=summary, metrics=metrics,
                        figures=[("fig", tmp_path / "x.png")], run={"model": "cnn", "params_total": 10})
    lines = REPORT_SECTIONS.get(name).factory(ctx)
    assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)
    assert lines, f"section {name} rendered nothing for a complete context"
