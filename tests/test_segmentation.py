"""Segmentation and multi-label training: joint augmentation, masked loss, XLA train step,
generated sets, and whole runs through the CLI (train, then `evaluate --checkpoint`).

Tests marked backend_agnostic also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_segmentation.py -m backend_agnostic -q
"""

import json

import keras
import numpy as np
import pytest

from kerasclf.layers.joint import JointFlipScaleCrop

BACKEND = keras.backend.backend()


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.backend_agnostic
def test_joint_augmentation_moves_image_and_mask_alike():
    """Each pixel's mask value is a function of its image value before augmentation, so any
    misalignment between the two outputs shows up as a broken function."""
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 5, (16, 20, 24)).astype("uint8")
    masks[:, 0] = 255
    images = np.stack([masks * 10 + 1, masks * 3, masks], -1).astype("float32")  # the mask encoded in the image
    layer = JointFlipScaleCrop(flip=True, zoom=0.5, seed=3)
    out_images, out_masks = layer(images, masks, training=True)
    out_images, out_masks = _np(out_images), _np(out_masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    np.testing.assert_array_equal(out_images[..., 2].astype("uint8"), out_masks)
    assert not np.array_equal(out_masks, masks)  # something moved
    assert set(np.unique(out_masks)) <= set(np.unique(masks))  # nearest: no blended class indices
    same_images, same_masks = layer(images, masks, training=False)
    np.testing.assert_array_equal(_np(same_masks), masks)


@pytest.mark.backend_agnostic
def test_joint_flip_alone_is_an_exact_mirror_or_identity():
    masks = np.arange(2 * 4 * 6).reshape(2, 4, 6).astype("uint8")
    images = np.repeat(masks[..., None], 3, -1).astype("float32")
    for seed in range(6):
        _, out = JointFlipScaleCrop(flip=True, zoom=0.0, seed=seed)(images, masks, training=True)
        for got, original in zip(_np(out), masks):
            assert np.array_equal(got, original) or np.array_equal(got, original[:, ::-1])


@pytest.mark.backend_agnostic
def test_masked_loss_ignores_void_pixels_exactly():
    from kerasclf.losses.dense import MaskedPixelAccuracy, MaskedSparseCrossentropy

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), (2, 4, 5)).astype("float32")
    masks = rng.integers(0, 3, (2, 4, 5)).astype("int32")
    masks[0, :2] = 255
    valid = masks != 255
    picked = np.take_along_axis(probs, np.where(valid, masks, 0)[..., None], -1)[..., 0]
    expected = -np.log(picked[valid]).mean()
    assert float(_np(MaskedSparseCrossentropy()(masks, probs))) == pytest.approx(expected, rel=1e-5)
    accuracy = MaskedPixelAccuracy()
    accuracy.update_state(masks, probs)
    assert float(_np(accuracy.result())) == pytest.approx((probs.argmax(-1) == masks)[valid].mean())


def _tiny_segmenter(num_classes=3, size=16):
    from kerasclf.config import load_config
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model

    cfg = load_config(overrides=["data.source=shapes-seg", "loss.name=segmentation_crossentropy", "model.name=cnn",
                                 "model.filters=[4, 8]", "model.dense=[4]"])
    info = DatasetInfo("shapes-seg", [f"c{i}" for i in range(num_classes)], (size, size), task="segmentation")
    return build_model(cfg, info)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("jit_compile", [True])
def test_segmentation_train_step_compiles_with_xla(jit_compile):
    """The whole train step (joint augmentation, model, masked loss, metrics) under XLA."""
    from kerasclf.losses.dense import MaskedSparseCrossentropy, task_metrics
    from kerasclf.training.segmentation import SegmentationTrainer

    keras.utils.set_random_seed(0)
    model = _tiny_segmenter()
    assert model.output.shape[1:] == (16, 16, 3)
    trainer = SegmentationTrainer(model, JointFlipScaleCrop(flip=True, zoom=0.3, seed=1))
    trainer.compile(optimizer="adam", loss=MaskedSparseCrossentropy(), metrics=task_metrics("segmentation", 3),
                    jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 16, 16, 3)).astype("uint8")
    masks = rng.integers(0, 3, (32, 16, 16)).astype("uint8")
    masks[:, 0] = 255
    history = trainer.fit((images, masks), masks, batch_size=16, epochs=1, verbose=0)
    assert trainer.jit_compile is True
    assert np.isfinite(history.history["loss"][-1])
    assert set(history.history) >= {"loss", "accuracy", "mean_iou"}


@pytest.mark.backend_agnostic
def test_segmentation_checkpoint_loads_in_safe_mode(tmp_path):
    from kerasclf.checkpoint import load_checkpoint

    model = _tiny_segmenter()
    model.save(tmp_path / "m.keras")
    loaded, labels = load_checkpoint(tmp_path / "m.keras")
    assert labels.task == "segmentation"
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    np.testing.assert_allclose(_np(loaded.predict(x, verbose=0)), _np(model.predict(x, verbose=0)), atol=1e-6)


def test_any_backbone_gives_its_last_feature_map():
    import keras

    from kerasclf.models import last_feature_map

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, name="conv")(inputs)
    pooled = keras.layers.Dense(5)(keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x)))
    assert tuple(last_feature_map(pooled, "m").shape) == (None, 4, 4, 4)


def test_shapes_set_has_void_borders_and_every_class():
    from kerasclf.data.sources.generated import SHAPES, make_shapes

    split = make_shapes(40, seed=0)
    assert split.x.shape == (40, 64, 64, 3) and split.y.shape == (40, 64, 64)
    assert set(np.unique(split.y)) == {*range(len(SHAPES)), 255}
    # the void band separates every shape from the background: no background pixel touches a shape pixel
    y = split.y
    shape = (y != 0) & (y != 255)
    touching = (shape[:, 1:] & (y[:, :-1] == 0)) | (shape[:, :-1] & (y[:, 1:] == 0))
    assert not touching.any()


def test_mosaics_label_the_classes_of_their_tiles():
    from kerasclf.data.sources.generated import make_mosaics

    tiles = np.stack([np.full((4, 4, 3), 10 * (c + 1), np.uint8) for c in range(5)])
    x, y = make_mosaics(tiles, np.arange(5), 5, 50, seed=0)
    assert x.shape == (50, 8, 8, 3) and y.shape == (50, 5)
    for image, labels in zip(x, y):
        seen = {int(image[r, c, 0]) // 10 - 1 for r in (0, 4) for c in (0, 4) if image[r, c, 0] % 10 == 0
                and 10 <= image[r, c, 0] <= 50 and (image[r:r + 4, c:c + 4] == image[r, c, 0]).all()}
        assert set(np.flatnonzero(labels)) == seen
        assert 1 <= labels.sum() <= 4


@pytest.mark.slow
def test_segmentation_run_then_evaluate_checkpoint(cli, tmp_path):
    logs = tmp_path / "logs"
    result = cli("train", "--set", "data.source=shapes-seg", "--set", "loss.name=segmentation_crossentropy",
                 "--set", "model.name=cnn", "--set", "model.filters=[4,8]", "--set", "augment.flip=true",
                 "--set", "augment.zoom=0.2", "--set", "train.epochs=1", "--set", "data.batch_size=64",
                 "--set", f"train.log_dir={logs}", "--set", "train.run_name=seg")
    assert result.exit_code == 0, (result.output, result.exception)
    run = logs / "seg"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and 0 <= metrics["test_mean_iou"] <= 1
    again = cli("evaluate", "--checkpoint", run / "best.keras", "--out", tmp_path / "eval")
    assert again.exit_code == 0, (again.output, again.exception)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["mean_iou"] == pytest.approx(metrics["test_mean_iou"])
    assert (tmp_path / "eval" / "samples.png").is_file()


@pytest.mark.slow
def test_multilabel_run_then_evaluate_checkpoint(cli, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "tiles", {"a": 20, "b": 20, "c": 20})
    logs = tmp_path / "logs"
    result = cli("train", "--set", "data.source=mosaic", "--set", f"data.mosaic_of=folder:{root}",
                 "--set", "data.mosaic_tile_size=8", "--set", "data.mosaic_count=80",
                 "--set", "loss.name=binary_crossentropy", "--set", "model.name=cnn", "--set", "model.filters=[4]",
                 "--set", "model.dense=[8]", "--set", "train.epochs=1", "--set", "eval.threshold=0.4",
                 "--set", f"train.log_dir={logs}", "--set", "train.run_name=ml")
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((logs / "ml" / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and 0 <= metrics["test_mAP"] <= 1
    again = cli("evaluate", "--checkpoint", logs / "ml" / "best.keras", "--out", tmp_path / "eval")
    assert again.exit_code == 0, (again.output, again.exception)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["threshold"] == 0.4  # the run's eval.threshold
    assert report["mAP"] == pytest.approx(metrics["test_mAP"])


@pytest.mark.parametrize("overrides,fragment", [
    (["augment.rotation=10"], "augment.rotation"),  # would move the image but not its mask
    (["augment.mixup=0.2"], "augment.mixup"),
    (["loss.aux=center"], "loss.aux"),
    (["data.classes=first:2"], "data.classes"),
    (["eval.threshold=1.0"], "eval.threshold"),
])
def test_segmentation_config_refuses_what_would_break_the_mask(overrides, fragment):
    from kerasclf.config import load_config
    from kerasclf.errors import ConfigError

    base = ["data.source=shapes-seg", "loss.name=segmentation_crossentropy"]
    load_config(overrides=base + ["augment.flip=true", "augment.zoom=0.3"])  # the joint augmentations are fine
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(overrides=base + overrides)
