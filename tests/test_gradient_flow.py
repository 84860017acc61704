"""Gradient flow: the probe's gradients against gradients computed other ways, and the callback's files."""

import csv
import json

import numpy as np
import pytest


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.backend_agnostic
def test_probe_equals_hand_derived_backprop():
    """A 2-layer MLP whose gradients are written out by hand in numpy (no autodiff at all)."""
    import keras

    from kerasclf.training.gradient_flow import GradientProbe, layer_gradient_stats

    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 2, 1])
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name="dense1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head_dense")(hidden))
    # small weights: no probability near Keras's clipping epsilon (JAX's loss clips, TensorFlow's uses the logits)
    w1, b1 = 0.4 * rng.normal(size=(6, 5)).astype("float32"), 0.1 * rng.normal(size=5).astype("float32")
    w2, b2 = 0.4 * rng.normal(size=(5, 3)).astype("float32"), 0.1 * rng.normal(size=3).astype("float32")
    model.set_weights([w1, b1, w2, b2])

    # forward and backward of mean sparse cross-entropy
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    p = _softmax(a1 @ w2 + b2)
    assert p.min() > 1e-3
    dz2 = (p - np.eye(3)[y]) / len(y)
    dw2, db2 = a1.T @ dz2, dz2.sum(0)
    dz1 = (dz2 @ w2.T) * (z1 > 0)
    dw1, db1 = x.T @ dz1, dz1.sum(0)

    grads = GradientProbe(model, keras.losses.SparseCategoricalCrossentropy())(x, y)
    by_var = [grads[id(v)] for v in model.trainable_variables]
    for got, want in zip(by_var, [dw1, db1, dw2, db2]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)

    stats = layer_gradient_stats(model, grads)
    assert [s["layer"] for s in stats] == ["dense1", "head_dense"]
    for s, (gw, gb) in zip(stats, [(dw1, db1), (dw2, db2)]):
        both = np.abs(np.concatenate([gw.ravel(), gb.ravel()]))
        assert s["size"] == both.size
        assert s["mean_abs"] == pytest.approx(both.mean(), rel=1e-4)
        assert s["max_abs"] == pytest.approx(both.max(), rel=1e-4)


@pytest.mark.backend_agnostic
def test_callback_keeps_no_copy_of_the_gradients_per_probe(tmp_path):
    """Probing every epoch must not keep every epoch's gradients (a model-sized copy each)."""
    import keras

    from kerasclf.training.gradient_flow import GradientFlow

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head_dense")(
        keras.layers.Dense(64, activation="relu", name="dense1")(inputs)))
    x, y = np.ones((4, 6), "float32"), np.array([0, 1, 2, 0])
    callback = GradientFlow(model, x, y, keras.losses.SparseCategoricalCrossentropy(), 1, tmp_path)
    for epoch in range(3):
        callback.probe(epoch)
    kept = [v for _, stats in callback.history for s in stats for v in s.values() if isinstance(v, np.ndarray)]
    assert len(callback.history) == 3 and not kept
    assert [s["layer"] for s in callback.history[-1][1]] == ["dense1", "head_dense"]


def _bn_cnn(seed=0):
    from kerasclf.config import load_config
    from kerasclf.training.run import prepare

    cfg = load_config(None, [
        "data.source=synthetic", "model.name=cnn", "model.filters=[8,8]", "model.dense=[16]",
        "model.batch_norm=true", f"seed={seed}",
    ])
    return cfg, prepare(cfg)


@pytest.mark.backend_agnostic
def test_probe_equals_one_sgd_step_and_changes_no_variable():
    """Keras's own train step with SGD(lr=1) moves each weight by exactly its gradient: w - w' = g.

    On a conv net with BatchNorm (batch statistics in training mode, no dropout or augmentation).
    The probe itself must leave every variable, BatchNorm moving statistics included, as it was.
    """
    import keras

    from kerasclf.models.freeze import weight_layer_names, weight_layers
    from kerasclf.training.gradient_flow import GradientProbe, layer_gradient_stats, probe_batch, probe_loss

    cfg, prepared = _bn_cnn()
    model = prepared.model
    x, y = probe_batch(prepared.data.train, 32, seed=0)
    before = [np.array(v) for v in model.weights]

    grads = GradientProbe(model, probe_loss(cfg))(x, y)
    for v, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(v), b, err_msg=f"probe changed {v.path}")

    trainable_before = [np.array(v) for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=keras.losses.SparseCategoricalCrossentropy())
    model.train_on_batch(x, y)
    direct = [b - np.array(v) for v, b in zip(model.trainable_variables, trainable_before)]
    for v, g in zip(model.trainable_variables, direct):
        np.testing.assert_allclose(grads[id(v)], g, rtol=2e-3, atol=2e-6, err_msg=v.path)

    stats = layer_gradient_stats(model, grads)
    assert [s["layer"] for s in stats] == weight_layer_names(model)  # BatchNorm layers are not bars
    assert not any("bn" in s["layer"] for s in stats)
    by_layer = {}
    for path, layer in weight_layers(model):
        ids = {id(v) for v in layer.trainable_variables}
        by_layer[path] = np.abs(np.concatenate([g.ravel() for v, g in zip(model.trainable_variables, direct) if id(v) in ids]))
    for s in stats:
        assert s["mean_abs"] == pytest.approx(by_layer[s["layer"]].mean(), rel=3e-3)
        assert s["max_abs"] == pytest.approx(by_layer[s["layer"]].max(), rel=3e-3)


def test_probe_batch_is_a_seeded_sample_across_classes():
    from kerasclf.data.splits import Split
    from kerasclf.training.gradient_flow import probe_batch

    y = np.repeat(np.arange(4), 50)  # class-ordered, as a folder data set is
    split = Split(np.arange(200)[:, None], y)
    x1, y1 = probe_batch(split, 64, seed=5)
    x2, y2 = probe_batch(split, 64, seed=5)
    np.testing.assert_array_equal(x1, x2)
    assert len(set(y1.tolist())) == 4  # not the first 64 images (one class)
    np.testing.assert_array_equal(y1, y[x1[:, 0]])  # images and labels stay paired
    assert len(probe_batch(split, 500, seed=0)[1]) == 200


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_training_with_gradient_flow_writes_charts_csv_and_tensorboard(cli, tmp_path):
    import importlib.util

    overrides = [
        "data.source=synthetic", "model.name=cnn", "model.filters=[8,8]", "model.dense=[16]",
        "model.trainable=last:2", "train.epochs=2", "train.verbose=0", "train.evaluate_after=false",
        "train.gradient_flow_every=1", "train.gradient_flow_batch=16", f"train.log_dir={tmp_path}", "train.run_name=gf",
    ]
    result = cli("train", *[a for o in overrides for a in ("--set", o)])
    assert result.exit_code == 0, (result.output, result.exception)
    out = tmp_path / "gf" / "gradient_flow"
    assert sorted(p.name for p in out.glob("*.png")) == ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    with open(out / "gradient_flow.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = json.loads((tmp_path / "gf" / "metrics.json").read_text())
    assert metrics["trainable_weight_layers"] == 2
    # the two trainable weight layers only (frozen ones have no gradient), at epochs 0, 1, 2
    assert [(r["epoch"], r["layer"]) for r in rows] == [(e, n) for e in "012" for n in ("dense1", "head_dense")]
    assert all(float(r["max_abs"]) >= float(r["mean_abs"]) > 0 for r in rows)
    if importlib.util.find_spec("tensorflow") and importlib.util.find_spec("tensorboard"):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "gf" / "tensorboard" / "gradient_flow"), size_guidance={"tensors": 0})
        events.Reload()
        tags = events.Tags()["tensors"]
        assert {"gradients/head_dense", "gradient_mean_abs/head_dense", "gradient_max_abs/dense1"} <= set(tags)
        steps = [e.step for e in events.Tensors("gradient_mean_abs/dense1")]
        assert steps == [0, 1, 2]
        import tensorflow as tf

        # the histograms count every gradient value of the layer once, in TensorBoard's format
        (first, *_) = events.Tensors("gradients/dense1")
        table = tf.make_ndarray(first.tensor_proto)
        assert table.shape == (30, 3) and np.all(table[:, 1] >= table[:, 0])
        assert table[:, 2].sum() == metrics_size(rows, "dense1")
        assert events.SummaryMetadata("gradients/dense1").plugin_data.plugin_name == "histograms"


def metrics_size(rows, layer):
    return int(next(r["size"] for r in rows if r["layer"] == layer))


def test_gradient_flow_keys_are_range_checked(user_error, cli):
    for key, value in (("train.gradient_flow_every", "-1"), ("train.gradient_flow_batch", "0")):
        user_error(cli("train", "--dry-run", "--set", f"{key}={value}"), key)
