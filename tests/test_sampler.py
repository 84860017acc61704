"""Balanced P x K batches (data.sampler) on both input paths, and the few-positives warning."""

import warnings

import keras
import numpy as np
import pytest

from kerasclf.data.sampler import PKSampler, anchors_with_positive, build_sampler, warn_if_few_positives
from kerasclf.errors import ConfigError

ON_TF = keras.backend.backend() == "tensorflow"


def labels_of(counts):
    return np.repeat(np.arange(len(counts)), counts)


def assert_pk(batch_labels, p, k):
    classes, per_class = np.unique(batch_labels, return_counts=True)
    assert len(classes) == p and np.all(per_class == k), (classes, per_class)


@pytest.mark.backend_agnostic
def test_every_batch_holds_p_classes_times_k_distinct_images():
    y = labels_of([30, 25, 20, 12, 9])
    sampler = PKSampler(y, 3, 4, seed=0)
    epoch = sampler.epoch()
    assert epoch.shape == (int(np.ceil(len(y) / 12)), 12)
    for batch in epoch:
        assert_pk(y[batch], 3, 4)
        assert len(set(batch.tolist())) == 12  # no image twice in a batch (every class has >= K)


@pytest.mark.backend_agnostic
def test_class_queues_use_every_image_before_repeating_one():
    y = labels_of([8, 8])  # 2 classes, P = 2: every batch takes K = 4 from each queue
    sampler = PKSampler(y, 2, 4, seed=1)
    for _ in range(3):  # 2 batches an epoch: each epoch takes every image exactly once
        assert sorted(sampler.epoch().ravel().tolist()) == list(range(16))


@pytest.mark.backend_agnostic
def test_seeded_and_redrawn_each_epoch():
    y = labels_of([10] * 6)
    a, b = PKSampler(y, 3, 2, seed=5), PKSampler(y, 3, 2, seed=5)
    first = a.epoch()
    np.testing.assert_array_equal(first, b.epoch())
    assert not np.array_equal(first, a.epoch())


@pytest.mark.backend_agnostic
def test_class_smaller_than_k_repeats_images():
    y = labels_of([2, 10])
    for batch in PKSampler(y, 2, 4, seed=0).epoch():
        assert_pk(y[batch], 2, 4)


def sampler_cfg(p, k, batch_size):
    from kerasclf.config import DataConfig, SamplerConfig

    return DataConfig(batch_size=batch_size, sampler=SamplerConfig(classes_per_batch=p, images_per_class=k))


@pytest.mark.parametrize("p,k,batch,fragment", [
    (4, 4, 32, "data.batch_size=16"),
    (1, 8, 8, ">= 2"),
    (4, None, 16, "needs both"),
])
def test_bad_sampler_settings_are_refused_with_the_config(p, k, batch, fragment):
    """Checked when the config is loaded (so --dry-run refuses them too), not after data loading."""
    from kerasclf.config import load_config

    sets = [f"data.batch_size={batch}", f"data.sampler.classes_per_batch={p}"]
    sets += [] if k is None else [f"data.sampler.images_per_class={k}"]
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, sets)


def test_more_classes_per_batch_than_the_data_has_says_what_to_do():
    with pytest.raises(ConfigError, match="only 5 classes"):
        build_sampler(sampler_cfg(9, 2, 18), labels_of([5] * 5), seed=0)


def test_no_sampler_configured_gives_none():
    from kerasclf.config import DataConfig

    assert build_sampler(DataConfig(), labels_of([5] * 5), seed=0) is None


def test_sampler_from_yaml_and_set(tmp_path):
    from kerasclf.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("data: {batch_size: 32, sampler: {classes_per_batch: 8, images_per_class: 4}}\n")
    cfg = load_config(path, ["data.sampler.images_per_class=2", "data.batch_size=16"])
    assert (cfg.data.sampler.classes_per_batch, cfg.data.sampler.images_per_class) == (8, 2)
    with pytest.raises(ConfigError, match="classes_per_batch"):
        load_config(None, ["data.sampler.classes=3"])


def test_anchor_share_hand_computed_and_warning():
    # 2 equally frequent classes, batches of 2: the other image shares the class half the time
    assert anchors_with_positive(labels_of([50, 50]), 2) == pytest.approx(0.5)
    assert anchors_with_positive(labels_of([10] * 3), 1) == 0.0
    with pytest.warns(UserWarning, match=r"about 27%.*classes_per_batch: 16, images_per_class: 4"):
        warn_if_few_positives(labels_of([5] * 200), 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_few_positives(labels_of([50] * 10), 128)  # CIFAR-10-like: every anchor has mates


def test_anchor_share_matches_simulation():
    y = labels_of([40, 20, 10, 5])
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(3000):
        batch = y[rng.integers(0, len(y), 8)]
        same = batch[:, None] == batch[None, :]
        shares.append((same.sum(1) > 1).mean())
    assert anchors_with_positive(y, 8) == pytest.approx(np.mean(shares), abs=0.01)


# --- both input paths, through the feeders -------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    from kerasclf.config import DataConfig
    from kerasclf.data import build_dataset

    return build_dataset(DataConfig(source="synthetic"), seed=0)


def make_cfg(tmp_path, *overrides):
    from kerasclf.config import load_config

    return load_config(None, [
        "data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
        "train.verbose=0", "train.evaluate_after=false", f"train.log_dir={tmp_path}",
        "data.batch_size=12", "data.sampler.classes_per_batch=3", "data.sampler.images_per_class=4",
        *overrides,
    ])


def feeder_for(cfg, data):
    from kerasclf.training.feeding import choose_feeder

    return choose_feeder(cfg, data, False, None)


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "resident"])
@pytest.mark.backend_agnostic
def test_feeders_give_pk_batches_redrawn_per_epoch(tmp_path, synthetic, on_device):
    if not on_device and not ON_TF:
        pytest.skip("the tf.data host path is the TensorFlow backend's")
    cfg = make_cfg(tmp_path, f"train.data_on_device={str(on_device).lower()}")
    feeder = feeder_for(cfg, synthetic)
    assert feeder.resident == on_device
    x = feeder.inputs("train", training=True)["x"]
    epochs = []
    for _ in range(2):
        seen = []
        if on_device:
            batches = [x[i] for i in range(len(x))]
            x.on_epoch_end()
        else:
            batches = list(x.as_numpy_iterator())
        assert len(batches) == int(np.ceil(len(synthetic.train) / 12))
        for inputs, labels in batches:
            assert_pk(labels, 3, 4)
            if on_device:  # indices into the shared table: the labels must be those rows' labels
                start, _ = feeder.store.offsets["train"]
                np.testing.assert_array_equal(synthetic.train.y[np.asarray(inputs) - start], labels)
            else:  # images: each must be a train image of the label it carries
                label_of = {img.tobytes(): lab for img, lab in zip(synthetic.train.x, synthetic.train.y)}
                assert [label_of[img.tobytes()] for img in inputs] == labels.tolist()
            seen.append(np.asarray(labels))
        epochs.append(np.concatenate(seen))
    assert not np.array_equal(epochs[0], epochs[1])
    assert "shuffle" not in feeder.inputs("val") and feeder.inputs("val").get("batch_size", 12) == 12


@pytest.mark.slow
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "resident"])
@pytest.mark.backend_agnostic
def test_training_runs_on_pk_batches(tmp_path, on_device):
    if not on_device and not ON_TF:
        pytest.skip("the tf.data host path is the TensorFlow backend's")
    from kerasclf.training.run import train

    cfg = make_cfg(tmp_path, f"train.data_on_device={str(on_device).lower()}", "train.epochs=2")
    run_dir, metrics = train(cfg)
    assert metrics["epochs_run"] == 2 and metrics["data_on_device"] == on_device
    assert (run_dir / "best.keras").is_file()
