"""CE + aux_weight * triplet/center loss in training (kerasclf.losses.composite, kerasclf.training.aux).

One training step is checked against the definitions (loss value, centre update), on every
backend; short runs check the saved checkpoint (plain classifier with its centres), resuming
with the centres, and the embedding report.
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

from kerasclf.config import load_config
from kerasclf.errors import ConfigError
from kerasclf.losses.metric import TripletLoss
from kerasclf.models import embedding_model, embedding_tensor
from kerasclf.training import aux as aux_loss

BACKEND = keras.backend.backend()
TINY = ["data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
        "train.verbose=0"]


def cfg_of(*overrides):
    return load_config(None, [*TINY, *overrides])


class FakeInfo:
    num_classes, class_names = 3, ["a", "b", "c"]


class FakeData:
    info = FakeInfo()

    class train:
        y = np.arange(30) % 3


def tiny_classifier(head_dropout=0.0):
    """uint8-free toy classifier in kerasclf's naming: ... -> [head_dropout] -> head_dense -> probabilities."""
    inputs = keras.Input((5,), name="image")
    x = keras.layers.Dense(4, activation="relu", name="features")(inputs)
    if head_dropout:
        x = keras.layers.Dropout(head_dropout, name="head_dropout")(x)
    x = keras.layers.Dense(3, name="head_dense")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(x), name="toy")


def one_step(overrides, x, y):
    """Compile with lr 0 (weights stay), run one train step; returns (training, model, logs, embedding)."""
    cfg = cfg_of(*overrides)
    classifier = tiny_classifier()
    training = aux_loss.setup(cfg, classifier, FakeData)
    model = training.fit_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    emb = ops.convert_to_numpy(embedding_model(classifier)(x))
    probs = ops.convert_to_numpy(classifier(x))
    logs = model.train_on_batch(x, y, return_dict=True)
    return training, logs, emb, probs


def batch(seed=0, n=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), (np.arange(n) % 3).astype(np.int32)


def ce(probs, y):
    return float(np.mean(-np.log(probs[np.arange(len(y)), y])))


@pytest.mark.backend_agnostic
def test_center_step_loss_and_centre_update_follow_the_definitions():
    x, y = batch(0)
    training, logs, emb, probs = one_step(["loss.aux=center", "loss.aux_weight=0.3", "loss.center_alpha=0.5"], x, y)
    centres_before = np.zeros((3, 4))
    want_aux = 0.5 * np.mean(np.sum((emb - centres_before[y]) ** 2, axis=1))
    assert logs["aux_loss"] == pytest.approx(want_aux, rel=1e-4)
    assert logs["loss"] == pytest.approx(ce(probs, y) + 0.3 * want_aux, rel=1e-4)
    want = centres_before.copy()
    for c in range(3):
        members = emb[y == c]
        want[c] -= 0.5 * (len(members) * centres_before[c] - members.sum(0)) / (1 + len(members))
    # the update made inside the compiled step reached the variable (JAX returns it as new state)
    np.testing.assert_allclose(ops.convert_to_numpy(training.holder.aux.centers), want, rtol=1e-4, atol=1e-6)
    assert not any(v is training.holder.aux.centers for v in training.saved.trainable_weights)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("mining", ["semi_hard", "batch_hard", "batch_all"])
def test_triplet_step_loss_and_active_fraction(mining):
    x, y = batch(1)
    _, logs, emb, probs = one_step(["loss.aux=triplet", "loss.aux_weight=1.0", f"loss.mining={mining}",
                                    "loss.margin=0.3"], x, y)
    want_aux, want_active = TripletLoss(margin=0.3, mining=mining)(emb, y, return_active_fraction=True)
    assert logs["aux_loss"] == pytest.approx(float(want_aux), rel=1e-4, abs=1e-6)
    assert logs["triplet_active"] == pytest.approx(float(want_active), abs=1e-6)
    assert logs["loss"] == pytest.approx(ce(probs, y) + float(want_aux), rel=1e-4)


@pytest.mark.backend_agnostic
def test_gradient_of_aux_loss_reaches_the_backbone():
    """With CE weighted out (head frozen), the aux loss alone still moves the feature layer."""
    x, y = batch(2)
    cfg = cfg_of("loss.aux=center", "loss.aux_weight=1.0")
    classifier = tiny_classifier()
    classifier.get_layer("head_dense").trainable = False
    training = aux_loss.setup(cfg, classifier, FakeData)
    training.holder.aux.centers.assign(np.ones((3, 4), np.float32))
    model = training.fit_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    before = ops.convert_to_numpy(classifier.get_layer("features").kernel).copy()
    first = model.train_on_batch(x, y, return_dict=True)["aux_loss"]
    assert not np.allclose(before, ops.convert_to_numpy(classifier.get_layer("features").kernel))
    for _ in range(20):
        last = model.train_on_batch(x, y, return_dict=True)["aux_loss"]
    assert last < first


def test_embedding_is_the_head_input_before_dropout():
    classifier = tiny_classifier(head_dropout=0.5)
    assert embedding_tensor(classifier) is classifier.get_layer("head_dropout").input


@pytest.mark.parametrize("override,fragment", [
    ("loss.aux=triplett", 'Did you mean "triplet"'),
    ("loss.mining=semihard", 'Did you mean "semi_hard"'),
    ("loss.distance=l2", "euclidean, squared, cosine"),
    ("loss.aux_weight=-1", "loss.aux_weight must be >= 0"),
    ("loss.center_alpha=2", "loss.center_alpha must be in [0, 1]"),
])
def test_bad_aux_settings_are_config_errors(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        cfg_of(override)  # refused when the config loads


def test_aux_with_mixup_is_refused(cli, user_error):
    result = cli("train", "--dry-run", *[a for t in TINY for a in ("--set", t)],
                 "--set", "loss.aux=center", "--set", "augment.mixup=0.2")
    user_error(result, "loss.aux=center", "MixUp")


def test_triplet_with_random_batches_of_few_positives_warns():
    cfg = cfg_of("loss.aux=triplet", "data.batch_size=2")
    with pytest.warns(UserWarning, match="data.sampler"):
        aux_loss.setup(cfg, tiny_classifier(), FakeData)


# --- whole runs ------------------------------------------------------------------------------

def run(tmp_path, *overrides):
    from kerasclf.training.run import train

    return train(cfg_of(f"train.log_dir={tmp_path}", "train.epochs=2", *overrides))


@pytest.mark.slow
@pytest.mark.backend_agnostic
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "resident"])
def test_center_run_saves_plain_classifier_with_centres_and_resumes_them(tmp_path, on_device):
    from kerasclf.evaluation.evaluate import load_checkpoint

    if not on_device and BACKEND != "tensorflow":
        pytest.skip("the host path is TensorFlow's")
    run_dir, metrics = run(tmp_path / "a", "loss.aux=center", "loss.aux_weight=0.1",
                           f"train.data_on_device={str(on_device).lower()}", "train.evaluate_after=false")
    assert metrics["data_on_device"] == on_device
    history = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert "aux_loss" in history and "val_aux_loss" in history
    model, labels = load_checkpoint(run_dir / "best.keras")  # safe mode
    images = np.zeros((3, 32, 32, 3), np.uint8)
    probs = ops.convert_to_numpy(model(images))
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    saved = ops.convert_to_numpy(model.get_layer("head_centers").center_loss.centers)
    assert np.abs(saved).max() > 0  # moved from their zero start by the update rule
    # a second run starting from that checkpoint starts from its centres
    from kerasclf.data import build_dataset
    from kerasclf.models import build_model

    cfg = cfg_of("loss.aux=center", f"model.weights={run_dir / 'best.keras'}")
    data = build_dataset(cfg.data, cfg.seed)
    classifier = build_model(cfg, data.info)
    training = aux_loss.setup(cfg, classifier, data)
    np.testing.assert_array_equal(ops.convert_to_numpy(training.holder.aux.centers), saved)


@pytest.mark.slow
def test_triplet_run_report_and_evaluate_embeddings(tmp_path, cli):
    run_dir, metrics = run(tmp_path, "loss.aux=triplet", "data.batch_size=32", "data.sampler.classes_per_batch=4",
                           "data.sampler.images_per_class=8")
    report = (run_dir / "eval" / "test" / "report.md").read_text()
    assert "## Embeddings" in report and "MAP@R" in report
    saved = json.loads((run_dir / "eval" / "test" / "embeddings" / "embeddings.json").read_text())
    assert 0 <= saved["map_at_r"] <= 1 and saved["size"] == 100
    assert "triplet_active" in (run_dir / "history.csv").read_text().splitlines()[0]
    out = tmp_path / "again"
    result = cli("evaluate", "--checkpoint", run_dir / "best.keras", "--embeddings", "--tsne-points", "50",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert "MAP@R" in result.stdout and (out / "embeddings" / "projector" / "projector_config.pbtxt").is_file()
    again = json.loads((out / "embeddings" / "embeddings.json").read_text())
    assert again["map_at_r"] == pytest.approx(saved["map_at_r"])
