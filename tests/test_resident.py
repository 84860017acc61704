"""The device-resident data path (kerasclf.training.resident / feeding): indices in, a
`TakeRows` gather of a uint8 table inside the model, checkpoints without the table.

Which feeder `train.data_on_device` picks: true -> resident (refused with MixUp/CutMix),
false -> host, auto -> resident on every backend but TensorFlow while the table fits.
Tests marked backend_agnostic also run under KERAS_BACKEND=jax:
    KERAS_BACKEND=jax python -m pytest tests/test_resident.py -m backend_agnostic -q
"""

import json
import zipfile

import keras
import numpy as np
import pytest

TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]
ON_TF = keras.backend.backend() == "tensorflow"


def make_cfg(tmp_path, *overrides):
    from kerasclf.config import load_config

    return load_config(None, [
        "data.source=synthetic", *TINY, "train.verbose=0", "train.evaluate_after=false",
        f"train.log_dir={tmp_path}", *overrides,
    ])


@pytest.fixture(scope="module")
def synthetic():
    from kerasclf.config import DataConfig
    from kerasclf.data import build_dataset

    return build_dataset(DataConfig(source="synthetic", test_fraction=0.0), seed=0)


def choose(cfg, data):
    from kerasclf.config import label_format
    from kerasclf.training.feeding import choose_feeder
    from kerasclf.training.run import _mixing_fn

    return choose_feeder(cfg, data, label_format(cfg) == "one_hot", _mixing_fn(cfg))


# --- the pieces -------------------------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_take_rows_gathers_exactly_the_indexed_rows():
    from kerasclf.training.resident import TakeRows

    table = np.random.default_rng(0).integers(0, 256, size=(7, 3, 2, 3), dtype=np.uint8)
    take = TakeRows(table.shape)
    take.table.assign(table)
    indices = np.array([6, 0, 3, 3, 1], dtype=np.int32)
    rows = keras.ops.convert_to_numpy(take(indices))
    assert rows.dtype == np.uint8
    assert np.array_equal(rows, table[indices])
    assert not take.trainable_weights  # the table is data, never trained


@pytest.mark.backend_agnostic
def test_resident_inputs_address_their_own_split(synthetic):
    from kerasclf.training.resident import ResidentData

    store = ResidentData(synthetic, lambda s: s.y)
    assert len(store.table) == sum(len(synthetic.split(s)) for s in ("train", "val", "test"))
    seen = []
    for name in ("train", "val", "test"):
        split = synthetic.split(name)
        inputs = store.inputs(name, batch_size=32, training=False)
        assert inputs["x"].dtype == np.int32 and inputs["batch_size"] == 32
        assert np.array_equal(store.table[inputs["x"]], split.x), name
        assert np.array_equal(inputs["y"], split.y), name
        assert "shuffle" not in inputs  # evaluate() rejects it
        seen += inputs["x"].tolist()
    assert sorted(seen) == list(range(len(store.table)))  # splits tile the table, no overlap
    assert store.inputs("train", 32, training=True)["shuffle"] is True


@pytest.mark.backend_agnostic
def test_wrapped_model_on_indices_predicts_what_the_model_predicts_on_images(tmp_path, synthetic):
    from kerasclf.training.resident import ResidentData, TakeRows, inner_model
    from kerasclf.training.run import prepare

    model = prepare(make_cfg(tmp_path)).model
    store = ResidentData(synthetic, lambda s: s.y)
    wrapped = store.wrap(model)
    assert isinstance(wrapped.get_layer("resident_images"), TakeRows)
    assert inner_model(wrapped) is model and inner_model(model) is model
    val = store.inputs("val", 64, training=False)
    on_indices = wrapped.predict(val["x"], batch_size=64, verbose=0)
    on_images = model.predict(synthetic.val.x, batch_size=64, verbose=0)
    np.testing.assert_allclose(on_indices, on_images, rtol=1e-5, atol=1e-6)


# --- which feeder -----------------------------------------------------------------------------


@pytest.mark.backend_agnostic
def test_mixup_with_data_on_device_true_is_refused_before_a_run_starts(cli, user_error, tmp_path):
    result = cli(
        "train", *[a for o in TINY for a in ("--set", o)], "--set", "data.source=synthetic",
        "--set", "train.data_on_device=true", "--set", "augment.mixup=0.2", "--set", f"train.log_dir={tmp_path}",
    )
    user_error(result, "data_on_device", "MixUp")
    assert not any(tmp_path.iterdir()), "a refused run left a run directory"


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("setting", ["true", "false", "auto"])
def test_data_on_device_picks_the_feeder(tmp_path, synthetic, setting):
    from kerasclf.training.feeding import HostFeeder, ResidentFeeder

    feeder = choose(make_cfg(tmp_path, f"train.data_on_device={setting}"), synthetic)
    resident = {"true": True, "false": False, "auto": not ON_TF}[setting]
    assert isinstance(feeder, ResidentFeeder if resident else HostFeeder)
    assert feeder.resident is resident


@pytest.mark.skipif(not ON_TF, reason="TensorFlow backend only")
def test_auto_on_tensorflow_keeps_data_on_the_host(tmp_path, synthetic):
    from kerasclf.training.feeding import HostFeeder

    feeder = choose(make_cfg(tmp_path), synthetic)  # data_on_device defaults to auto
    assert isinstance(feeder, HostFeeder) and not feeder.resident
    assert issubclass(feeder.checkpoint, keras.callbacks.ModelCheckpoint)  # the whole model, saved atomically
    assert feeder.checkpoint.set_model is keras.callbacks.ModelCheckpoint.set_model  # not the resident inner model


@pytest.mark.backend_agnostic
def test_auto_keeps_data_on_the_host_above_the_limit_or_with_mixup(tmp_path, synthetic, monkeypatch):
    from kerasclf.training import feeding
    from kerasclf.training.resident import table_bytes

    cfg = make_cfg(tmp_path)
    nbytes = table_bytes(synthetic)
    assert nbytes == sum(synthetic.split(s).x.nbytes for s in ("train", "val", "test"))
    monkeypatch.setattr(feeding, "RESIDENT_LIMIT_BYTES", nbytes)
    assert choose(cfg, synthetic).resident is (not ON_TF)  # exactly at the limit still fits
    monkeypatch.setattr(feeding, "RESIDENT_LIMIT_BYTES", nbytes - 1)
    assert choose(cfg, synthetic).resident is False
    monkeypatch.setattr(feeding, "RESIDENT_LIMIT_BYTES", 2**40)
    assert choose(make_cfg(tmp_path, "augment.mixup=0.2"), synthetic).resident is False


@pytest.mark.backend_agnostic  # uses tf.data (needs TensorFlow installed), but with any Keras backend
def test_host_feeder_mixes_training_batches_on_every_backend(tmp_path, synthetic):
    """MixUp keeps data on the host; its batches come mixed, under JAX too (keras.ops on the
    JAX backend cannot run inside a tf.data graph map)."""
    pytest.importorskip("tensorflow")
    from kerasclf.data.pipeline import one_hot

    feeder = choose(make_cfg(tmp_path, "augment.mixup=0.4", "data.batch_size=64"), synthetic)
    assert not feeder.resident
    images, labels = (np.asarray(t) for t in next(iter(feeder.inputs("train", training=True)["x"])))
    assert images.dtype == np.uint8 and images.shape == (64, 32, 32, 3)
    assert labels.dtype == np.float32 and labels.shape == (64, 4)
    np.testing.assert_allclose(labels.sum(-1), 1.0, rtol=1e-5)
    assert (labels.max(-1) < 0.999).sum() > 16, "training labels are not mixed"
    val = feeder.inputs("val")  # evaluation data is never mixed
    assert np.array_equal(np.asarray(val["x"]), synthetic.val.x)
    assert np.array_equal(val["y"], one_hot(synthetic.val.y, 4))


# --- a run ------------------------------------------------------------------------------------


def _layer_classes(model):
    out = []
    for layer in model.layers:
        out.append(type(layer).__name__)
        if isinstance(layer, keras.Model):
            out += _layer_classes(layer)
    return out


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_resident_run_trains_and_saves_checkpoints_without_the_table(tmp_path, monkeypatch):
    import kerasclf.layers.preprocessing  # noqa: F401  registers the custom layers for safe_mode
    from kerasclf.training import run as run_module
    from kerasclf.training.resident import table_bytes

    prepared = []

    def keep(cfg, *args):
        prepared.append(real_prepare(cfg, *args))
        return prepared[-1]

    real_prepare = run_module.prepare
    monkeypatch.setattr(run_module, "prepare", keep)
    # TensorFlow needs it asked for; elsewhere it is the default.
    overrides = ["train.data_on_device=true"] if ON_TF else []
    run_dir, metrics = run_module.train(make_cfg(tmp_path, "train.epochs=2", *overrides))

    assert metrics["data_on_device"] is True
    assert json.loads((run_dir / "metrics.json").read_text())["data_on_device"] is True
    assert metrics["epochs_run"] == 2 and metrics["best_val_accuracy"] is not None
    assert metrics["final_train_accuracy"] > 0.25  # chance on 4 classes: it learnt something

    (p,) = prepared
    model, data = p.model, p.data
    nbytes = table_bytes(data)
    in_memory = model.predict(data.test.x, batch_size=64, verbose=0)
    for name in ("best.keras", "last.keras"):
        path = run_dir / name
        assert path.stat().st_size < nbytes / 4, f"{name} holds the data table?"
        with zipfile.ZipFile(path) as z:
            config = z.read("config.json").decode()
        assert "TakeRows" not in config and "resident_images" not in config
        loaded = keras.saving.load_model(str(path), safe_mode=True)
        assert "TakeRows" not in _layer_classes(loaded)
        assert loaded.inputs[0].dtype == "uint8" and tuple(loaded.inputs[0].shape[1:]) == (32, 32, 3)
        if name == "last.keras":  # the weights at the end of training, as the in-memory model has them
            np.testing.assert_allclose(
                loaded.predict(data.test.x, batch_size=64, verbose=0), in_memory, rtol=1e-5, atol=1e-6
            )
    best = keras.saving.load_model(str(run_dir / "best.keras"), safe_mode=True)
    accuracy = float((best.predict(data.test.x, batch_size=64, verbose=0).argmax(-1) == data.test.y).mean())
    assert metrics["test_accuracy"] == pytest.approx(accuracy)
