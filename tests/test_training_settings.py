"""What train.mixed_precision, train.steps_per_execution and data.shuffle_buffer change in a run.

The NaN tests inject the fault through `plugins:`: a schedule whose learning rate is NaN at
one optimizer step. The update of that step makes every weight NaN, so the loss of the next
batch is the first non-finite one, and the test knows which batch that is.
"""

import csv
import hashlib
import math
import sys

import numpy as np
import pytest

from kerasclf import registry
from kerasclf.config import load_config

TINY = ["data.source=digits", "data.limit_per_class=40", "data.batch_size=32", "model.name=cnn", "model.filters=[8]",
        "model.dense=[16]", "train.verbose=0"]
REGISTRIES = [value for value in vars(registry).values() if isinstance(value, registry.Registry)]


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _float32_policy_after():
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- mixed precision

@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_mixed_precision_computes_in_bfloat16_and_its_checkpoint_reloads(tmp_path):
    from kerasclf.checkpoint import load_checkpoint
    from kerasclf.data import build_dataset
    from kerasclf.training.assemble import prepare
    from kerasclf.training.run import train

    cfg = load_config(None, [*TINY, "train.mixed_precision=mixed_bfloat16", "train.epochs=1", f"train.log_dir={tmp_path}"])
    run_dir, metrics = train(cfg, verbose=0)
    assert metrics["epochs_run"] == 1
    assert all(math.isfinite(float(row["loss"])) for row in history(run_dir))

    model, labels = load_checkpoint(run_dir / metrics["checkpoint"])
    conv = model.get_layer("conv1_1")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"  # 16-bit maths, 32-bit weights
    test = build_dataset(cfg.data, cfg.seed).test
    probs = np.asarray(model.predict(test.x, verbose=0))
    assert probs.dtype == np.float32  # the output stays float32: not rounded to bfloat16's 8 bits
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float(np.mean(probs.argmax(axis=1) == test.y))
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1.5 / len(test.y))  # the run scored this checkpoint

    # the policy is process-wide: the next run in this process is float32 again
    after = prepare(load_config(None, [*TINY, f"train.log_dir={tmp_path / 'next'}"]))
    assert after.model.get_layer("conv1_1").compute_dtype == "float32"


# ----------------------------------------------------------------------------- NaN in a group of steps

POISON = '''
import keras

from kerasclf.training.schedules import register_schedule


@register_schedule("{name}", description="optim.lr, but NaN at optimizer step {step}")
def poisoned(optim, steps):
    class Poisoned(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = keras.ops.cast(step, "float32")
            return keras.ops.where(keras.ops.equal(step, {step}.0), float("nan"), optim.lr)

        def get_config(self):
            return {{}}

    return Poisoned()
'''


@pytest.fixture
def registries_restored():
    before = {id(r): dict(r.load()._entries) for r in REGISTRIES}
    modules = set(sys.modules)
    yield
    for r in REGISTRIES:
        r._entries.clear()
        r._entries.update(before[id(r)])
    for name in set(sys.modules) - modules:
        if name.startswith("kerasclf_plugin_"):
            del sys.modules[name]


@pytest.mark.slow
@pytest.mark.backend_agnostic
@pytest.mark.parametrize("per_call", [1, 4])
def test_a_nan_inside_a_group_of_steps_names_its_epoch_and_group(per_call, cli, tmp_path, registries_restored):
    from kerasclf.data import build_dataset

    steps = math.ceil(len(build_dataset(load_config(None, TINY).data).train.y) / 32)
    bad_epoch, bad_step = 2, 6  # 1-based: the first batch whose loss is NaN
    poisoned_update = (bad_epoch - 1) * steps + bad_step - 2  # 0-based optimizer step before it
    name = f"poison_{per_call}"
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(POISON.format(name=name, step=poisoned_update))

    result = cli("train", *[a for o in (*TINY, f"plugins=[{plugin}]", f"optim.schedule={name}", "optim.name=sgd",
                                        "train.epochs=3", f"train.steps_per_execution={per_call}",
                                        f"train.log_dir={tmp_path / 'logs'}", "train.run_name=nan") for a in ("--set", o)])
    assert result.exit_code == 3, (result.output, result.exception)
    if per_call == 1:
        where = f"at epoch {bad_epoch}, step {bad_step} of {steps};"
    else:  # Keras runs `per_call` steps in one call and reports after the group
        first = (bad_step - 1) // per_call * per_call + 1
        where = f"at epoch {bad_epoch}, in steps {first}-{min(first + per_call - 1, steps)} of {steps} (one call of"
    assert where in result.stderr, result.stderr
    assert [row["epoch"] for row in history(tmp_path / "logs" / "nan")] == ["1"]  # the bad epoch is not logged


# ----------------------------------------------------------------------------- shuffle buffer

def fed_positions(buffer, epoch=0):
    """Where each image fed in one training epoch sits in the training split."""
    from kerasclf.data import build_dataset
    from kerasclf.training.feeding import choose_feeder

    # train.deterministic: tf.data hands batches over in order (otherwise its parallel gather may
    # swap neighbouring batches, and the fed stream is the order only up to that)
    cfg = load_config(None, ["data.source=synthetic", "data.batch_size=16", "train.data_on_device=false",
                             "train.deterministic=true",
                             f"data.shuffle_buffer={'null' if buffer is None else buffer}"])
    data = build_dataset(cfg.data, cfg.seed)
    feeder = choose_feeder(cfg, data, one_hot_labels=False, mixing=None)
    batches = feeder.inputs("train", training=True)["x"]
    for order in feeder.orders:
        order.epoch = epoch
    where = {hashlib.sha1(image.tobytes()).hexdigest(): i for i, image in enumerate(data.train.x)}
    assert len(where) == len(data.train.x), "the synthetic images must be distinct"
    fed = [where[hashlib.sha1(np.asarray(image).tobytes()).hexdigest()]
           for images, _ in batches for image in np.asarray(images)]
    return np.array(fed), len(data.train.x)


@pytest.mark.backend_agnostic
def test_shuffle_buffer_of_one_keeps_the_split_order():
    fed, n = fed_positions(1)
    assert fed.tolist() == list(range(n))


@pytest.mark.backend_agnostic
def test_shuffle_buffer_lets_no_image_run_ahead_of_the_buffer():
    """A buffer of b holds the next b images: the k-th image fed comes from the first k + b."""
    fed, n = fed_positions(8)
    assert sorted(fed.tolist()) == list(range(n))  # every image once
    assert np.all(fed < np.arange(n) + 8)
    assert fed.tolist() != list(range(n))
    assert fed.tolist() != fed_positions(8, epoch=1)[0].tolist()  # a new order every epoch


@pytest.mark.backend_agnostic
def test_no_shuffle_buffer_shuffles_the_whole_split():
    fed, n = fed_positions(None)
    assert sorted(fed.tolist()) == list(range(n))
    assert np.max(fed - np.arange(n)) > n // 2  # an image from the far end comes early: no buffer bound
