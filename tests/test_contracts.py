"""Contract tests over every registry entry (the way timm's tests/test_models.py covers every model).

Every model builds with the named outputs, its weight-layer count equals the count its
architecture's papers give, it survives a safe-mode save and reload with the same
predictions, and `trainable: head` leaves only the head trainable. Every data set yields
what it declares; every loss is finite and lower for the right class; every report section shows the
facts of its context. Optimizers and schedules: test_schedules.py (closed forms). A new
entry is covered without a new test, or the test asks for its expectation.
"""

import numpy as np
import pytest

from kerasclf.config import from_dict
from kerasclf.data.info import DatasetInfo
from kerasclf.registry import DATASETS, LOSSES, MODELS, REPORT_SECTIONS

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

    task = LOSSES.get(name).meta.get("task", "multiclass")
    if task != "multiclass" and smoothing:
        pytest.skip("label smoothing is a multiclass option")
    source = {"multiclass": "digits", "multilabel": "mosaic", "segmentation": "shapes-seg"}[task]
    cfg = from_dict({"data": {"source": source}, "loss": {"name": name, "label_smoothing": smoothing}})
    loss, labels = build_loss(cfg)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 16)
    targets = np.eye(5, dtype="float32")[y] if labels in ("one_hot", "multi_hot") else y
    good = np.full((16, 5), 0.02, "float32")
    good[np.arange(16), y] = 0.92
    bad = np.roll(good, 1, axis=1)
    if task == "segmentation":  # 16 pixels of a 4x4 mask, one of them void
        targets = y.reshape(1, 4, 4).copy()
        targets[0, 0, 0] = 255
        good, bad = good.reshape(1, 4, 4, 5), bad.reshape(1, 4, 4, 5)
    good_loss = float(keras.ops.convert_to_numpy(loss(targets, good)))
    bad_loss = float(keras.ops.convert_to_numpy(loss(targets, bad)))
    assert np.isfinite(good_loss) and np.isfinite(bad_loss) and good_loss < bad_loss


# The context every report section gets below, and what each section must show of it,
# worked out here by hand or with scikit-learn: 4 images, 3 of them right; class "c" never.
Y_TRUE, Y_PRED, NAMES = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"]
RUN = {"model": "cnn", "params_total": 123456, "best_epoch": 7, "frozen_layers": ["conv1", "conv2"]}


def macro_f1_shown(text):
    from sklearn.metrics import f1_score

    (row,) = [line for line in text.splitlines() if line.strip().startswith("macro avg")]
    return float(row.split()[-2]) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"), abs=1e-4)


# The dense tasks read the same 4 samples: as multi-hot labels with scores, and as 4 pixels.
ML_TRUE, ML_PROB = np.eye(3)[Y_TRUE], np.eye(3)[Y_PRED] * 0.9


def dense_shown(text, label, value):
    return f"{label}: **{value:.4f}**" in text


def sklearn_map():
    from sklearn.metrics import average_precision_score

    return average_precision_score(ML_TRUE, ML_PROB, average="macro")


def sklearn_mean_iou():
    from sklearn.metrics import jaccard_score

    return jaccard_score(Y_TRUE, Y_PRED, average="macro", zero_division=0)


# Scores of the 4 images: image 3 (class c, predicted b) has the highest loss, -ln 0.2.
Y_PROB = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.2, 0.6, 0.2]])

SHOWS = {
    "augmented_batch": lambda text: "![augmented training images](aug.png)" in text,
    "gradient_flow": lambda text: "[gradient flow epoch 0](gradient_flow_epoch_0.png)" in text
    and "![gradient flow, last](gradient_flow_epoch_4.png)" in text,
    "most_confused": lambda text: "| c | b | 1 | 100.0% |" in text,  # c's one image, called b
    "top_losses": lambda text: f"| 1 | `c.jpg` | c | b | 0.700 | 0.200 | {-np.log(0.2):.3f} |" in text,
    "multilabel_summary": lambda text: dense_shown(text, "mAP", sklearn_map()),
    "segmentation_summary": lambda text: dense_shown(text, "mean IoU", sklearn_mean_iou()),
    # class a: its one image labelled and scored right, so every figure is 1 (AP included)
    "per_class_dense": lambda text: "| a | 1 | " + " | ".join(["1.0000"] * 6) + " |" in text,
    "summary": lambda text: "75.00%" in text and "**test**" in text and "worst class: **c** 0.00% (0/1)" in text,
    "run": lambda text: "123,456" in text and "best epoch: 7" in text and "conv1, conv2" in text,
    "per_class": lambda text: all(cell in text for cell in ("| a | 100.00% (1/1) |", "| b | 100.00% (2/2) |", "| c | 0.00% (0/1) |")),
    "classification_report": lambda text: macro_f1_shown(text),
    "figures": lambda text: "![fig](x.png)" in text,
}


def test_every_report_section_has_an_expectation():
    assert set(REPORT_SECTIONS.names()) <= set(SHOWS), "say in SHOWS what the new section must show"


@pytest.mark.parametrize("name", REPORT_SECTIONS.names())
def test_every_report_section_shows_its_facts(name, tmp_path):
    from kerasclf.evaluation.dense_metrics import confusion_counts, multilabel_metrics, segmentation_metrics
    from kerasclf.evaluation.metrics import classification_summary
    from kerasclf.evaluation.sections import ReportContext

    task = (REPORT_SECTIONS.get(name).meta.get("tasks") or ("multiclass",))[0]
    summary = classification_summary(Y_TRUE, Y_PRED, NAMES)
    metrics = {"macro_auc": 0.9, "f1_macro": 0.5}
    if task == "multilabel":
        summary = metrics = multilabel_metrics(ML_TRUE, ML_PROB, NAMES)
    elif task == "segmentation":
        summary = metrics = {**segmentation_metrics(confusion_counts(Y_TRUE, Y_PRED, 3), NAMES), "size": 1,
                             "void_pixels": 0}
    run = {**RUN, "augmented_batch": str(tmp_path / "aug.png"),
           "gradient_flow_figures": [str(tmp_path / f"gradient_flow_epoch_{e}.png") for e in (0, 4)]}
    arrays = {"y_true": Y_TRUE, "y_prob": Y_PROB, "paths": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]}
    ctx = ReportContext(out=tmp_path, title="t", split="test", summary=summary, metrics=metrics,
                        figures=[("fig", tmp_path / "x.png")], run=run, task=task, arrays=arrays)
    lines = REPORT_SECTIONS.get(name).factory(ctx)
    assert all(isinstance(line, str) for line in lines)
    assert SHOWS[name]("\n".join(lines)), "\n".join(lines)
