"""Two-phase fine-tuning (train.finetune_*) and transfer from one of your own checkpoints
(model.weights=<run>/best.keras).

Weights are compared layer by layer against a same-seed build (`prepare`) and against the
checkpoints themselves; learning rates and epochs are read back from history.csv.
Tests marked backend_agnostic also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_finetune_transfer.py -m backend_agnostic -q
"""

import csv
import json

import numpy as np
import pytest

TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]
# Parameter counts of the tiny cnn on 32x32x3 inputs, written out by layer.
CONV_DENSE_PARAMS = (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 8 + 8) + (8 * 16 * 16 * 16 + 16)
NON_HEAD = ("conv1_1", "conv1_2", "dense1")


def head_params(num_classes):
    return 16 * num_classes + num_classes


def make_cfg(log_dir, *overrides, model=TINY):
    from kerasclf.config import load_config

    return load_config(None, [
        "data.source=synthetic", *model, "train.verbose=0", "train.evaluate_after=false",
        f"train.log_dir={log_dir}", *overrides,
    ])


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load(checkpoint):
    import keras

    import kerasclf.layers.preprocessing  # noqa: F401  registers the custom layers for safe_mode

    return keras.saving.load_model(str(checkpoint), safe_mode=True)


def layer_weights(model):
    """{leaf layer name: [numpy arrays]} for every layer that has weights."""
    import keras

    out = {}

    def walk(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
            elif layer.weights:
                out[layer.name] = [np.array(w) for w in layer.get_weights()]

    walk(model)
    return out


def same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def initial_weights(cfg):
    """The weights train(cfg) starts from: a fresh same-seed build."""
    from kerasclf.training.run import prepare

    return layer_weights(prepare(cfg).model)


def split_accuracy(checkpoint, cfg, split_name):
    """Accuracy of a checkpoint on the run's own split, recomputed outside kerasclf."""
    from kerasclf.data import build_dataset

    split = build_dataset(cfg.data, cfg.seed).split(split_name)
    probs = load(checkpoint).predict(split.x, batch_size=64, verbose=0)
    return float((probs.argmax(-1) == split.y).mean())


# --- two-phase fine-tuning ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_phase_one_with_head_trainable_leaves_the_rest_bit_identical(tmp_path):
    from kerasclf.training.run import train

    cfg = make_cfg(tmp_path, "train.epochs=2", "model.trainable=head", "optim.lr=0.01")
    before = initial_weights(cfg)
    run_dir, metrics = train(cfg)

    after = layer_weights(load(run_dir / "last.keras"))
    assert set(after) == set(before) == {*NON_HEAD, "head_dense"}
    for name in NON_HEAD:
        assert same(after[name], before[name]), f"{name} changed although frozen"
    assert not same(after["head_dense"], before["head_dense"]), "the head did not train"
    assert "finetune" not in metrics
    assert metrics["params_trainable"] == head_params(4)
    assert len(read_history(run_dir / "history.csv")) == metrics["epochs_run"] == 2


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_two_phases_continue_the_history_with_a_lower_lr_and_unfreeze(tmp_path):
    from kerasclf.training.run import train

    lr, factor = 0.002, 0.25  # a factor other than the default 0.1
    cfg = make_cfg(
        tmp_path, "train.epochs=2", "train.finetune_epochs=2", "model.trainable=head",
        "train.finetune_trainable=full", f"train.finetune_lr_factor={factor}", f"optim.lr={lr}",
        "optim.schedule=constant",
    )
    before = initial_weights(cfg)
    run_dir, metrics = train(cfg)

    history = read_history(run_dir / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2", "3", "4"]  # one header, epochs continue (from 1)
    lrs = [float(row["learning_rate"]) for row in history]
    assert lrs[:2] == pytest.approx([lr, lr], rel=1e-6)
    assert lrs[2:] == pytest.approx([lr * factor] * 2, rel=1e-6)

    total = CONV_DENSE_PARAMS + head_params(4)
    assert metrics["epochs_run"] == 4
    assert metrics["params_total"] == total
    assert metrics["params_trainable"] == head_params(4)  # phase 1
    finetune = metrics["finetune"]
    assert finetune["params_trainable"] == finetune["params_total"] == total
    assert finetune["params_non_trainable"] == 0 and finetune["frozen_layers"] == []
    assert finetune["trainable"] == "full"
    assert json.loads((run_dir / "metrics.json").read_text())["finetune"] == finetune

    val = [float(row["val_accuracy"]) for row in history]
    assert metrics["best_epoch"] == int(np.argmax(val)) + 1
    assert metrics["best_val_accuracy"] == pytest.approx(max(val))

    after = layer_weights(load(run_dir / "last.keras"))
    for name in (*NON_HEAD, "head_dense"):
        assert not same(after[name], before[name]), f"{name} did not train in phase 2"


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_a_worse_finetune_epoch_does_not_replace_best_keras(tmp_path):
    """Phase 1 learns the synthetic set; phase 2 at lr 1.0 wrecks it. best.keras must stay phase 1's."""
    from kerasclf.training.run import train

    cfg = make_cfg(
        tmp_path, "train.epochs=2", "train.finetune_epochs=1", "optim.lr=0.002",
        "train.finetune_lr_factor=500",
    )
    run_dir, metrics = train(cfg)

    val = [float(row["val_accuracy"]) for row in read_history(run_dir / "history.csv")]
    assert len(val) == 3
    assert val[2] < max(val[:2]), f"phase 2 was not worse, the test proves nothing: {val}"
    assert metrics["best_epoch"] == int(np.argmax(val)) + 1 <= 2
    assert metrics["best_val_accuracy"] == pytest.approx(max(val))
    # The files hold what the log says: best.keras the best epoch, last.keras the last one.
    assert split_accuracy(run_dir / "best.keras", cfg, "val") == pytest.approx(max(val), abs=1e-6)
    assert split_accuracy(run_dir / "last.keras", cfg, "val") == pytest.approx(val[-1], abs=1e-6)


# --- transfer from your own checkpoint --------------------------------------------------------


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    """One epoch of pretraining each: cnn on 2 and on 3 synthetic classes, and an mlp."""
    from kerasclf.training.run import train

    logs = tmp_path_factory.mktemp("source-logs")
    runs = {}
    mlp = ["model.name=mlp", "model.units=[16]"]
    for name, classes, model in (
        ("cnn2", "[class0, class1]", TINY),
        ("cnn3", "[class0, class1, class2]", TINY),
        ("mlp", "[class0, class1]", mlp),
    ):
        cfg = make_cfg(
            logs, "train.epochs=1", "optim.lr=0.01", f"train.run_name={name}", f"data.classes={classes}", model=model
        )
        runs[name], _ = train(cfg)
    return runs


def transfer_cfg(tmp_path, checkpoint, classes, *overrides):
    return make_cfg(
        tmp_path, f"data.classes=[{', '.join(classes)}]", f"model.weights={checkpoint}",
        "model.trainable=head", "train.epochs=1", *overrides,
    )


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_transfer_copies_every_non_head_layer_and_keeps_a_fresh_head(tmp_path, source_runs):
    """class0/1 -> class2/3: same head shape, other classes; the head must not be copied."""
    from kerasclf.training.run import prepare, train

    checkpoint = source_runs["cnn2"] / "best.keras"
    source = layer_weights(load(checkpoint))
    cfg = transfer_cfg(tmp_path, checkpoint, ["class2", "class3"])
    prepared = prepare(cfg)
    built = layer_weights(prepared.model)
    fresh = initial_weights(transfer_cfg(tmp_path, "none", ["class2", "class3"]))

    assert set(built) == set(source) == {*NON_HEAD, "head_dense"}
    for name in (*NON_HEAD, "head_dense"):
        assert not same(fresh[name], source[name])  # else the comparisons below would prove nothing
    for name in NON_HEAD:
        assert same(built[name], source[name]), f"{name} was not transferred"
    assert [w.shape for w in source["head_dense"]] == [w.shape for w in built["head_dense"]]
    assert same(built["head_dense"], fresh["head_dense"]), "a head trained for other classes was copied"
    assert prepared.summary["class_names"] == ["class2", "class3"]
    assert prepared.summary["trainable"] == "head"
    assert prepared.summary["params_trainable"] == head_params(2)

    # Training the head on the new classes keeps the transferred layers as they were.
    run_dir, _ = train(cfg)
    trained = layer_weights(load(run_dir / "last.keras"))
    for name in NON_HEAD:
        assert same(trained[name], source[name]), f"{name} moved although frozen"
    assert not same(trained["head_dense"], fresh["head_dense"])
    assert load(run_dir / "best.keras").get_layer("labels").class_names == ["class2", "class3"]


@pytest.mark.backend_agnostic
def test_transfer_to_the_same_classes_copies_the_head_too(tmp_path, source_runs):
    from kerasclf.training.run import prepare

    checkpoint = source_runs["cnn2"] / "best.keras"
    source = layer_weights(load(checkpoint))
    built = layer_weights(prepare(transfer_cfg(tmp_path, checkpoint, ["class0", "class1"])).model)
    for name in (*NON_HEAD, "head_dense"):
        assert same(built[name], source[name]), f"{name} was not transferred"


@pytest.mark.backend_agnostic
def test_transfer_leaves_a_head_of_another_shape_fresh(tmp_path, source_runs):
    from kerasclf.training.run import prepare

    checkpoint = source_runs["cnn3"] / "best.keras"
    source = layer_weights(load(checkpoint))
    built = layer_weights(prepare(transfer_cfg(tmp_path, checkpoint, ["class2", "class3"])).model)
    fresh = initial_weights(transfer_cfg(tmp_path, "none", ["class2", "class3"]))

    assert [w.shape for w in source["head_dense"]] == [(16, 3), (3,)]
    assert [w.shape for w in built["head_dense"]] == [(16, 2), (2,)]
    assert same(built["head_dense"], fresh["head_dense"]), "the head is not a fresh same-seed head"
    for name in NON_HEAD:
        assert same(built[name], source[name]), f"{name} was not transferred"


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("classes", [["class0", "class1"], ["class2", "class3"]], ids=["same-classes", "other-classes"])
def test_transfer_from_another_model_is_refused(tmp_path, source_runs, classes):
    """mlp (flatten, dense1 3072->16, head 16->2) into cnn (convs, dense1 2048->16, head 16->2):
    they share layer names, and even the head's shape, but no feature layer, so nothing
    transfers (a head alone would read features the new network does not compute)."""
    from kerasclf.errors import ModelError
    from kerasclf.training.run import prepare

    checkpoint = source_runs["mlp"] / "best.keras"
    with pytest.raises(ModelError, match="nothing could be transferred") as info:
        prepare(transfer_cfg(tmp_path, checkpoint, classes))
    assert str(checkpoint) in str(info.value) and "'mlp'" in str(info.value)


@pytest.mark.backend_agnostic
def test_transfer_error_reaches_the_cli_as_a_user_error(cli, user_error, tmp_path, source_runs):
    checkpoint = source_runs["mlp"] / "best.keras"
    result = cli(
        "train", "--set", "data.source=synthetic", *[a for o in TINY for a in ("--set", o)],
        "--set", f"model.weights={checkpoint}", "--set", f"train.log_dir={tmp_path}",
    )
    user_error(result, "nothing could be transferred", str(checkpoint))
    assert not any(tmp_path.iterdir()), "a refused run left a run directory"
