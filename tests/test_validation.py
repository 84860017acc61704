"""The one validation pass: every config key with a constraint refuses an invalid value at load
time, and `train --dry-run` and a real `train` refuse exactly the same values, before data is
read or a run directory exists."""

import dataclasses

import pytest

from kerasclf import config as C

# Keys whose constraint is a function: an invalid value for each.
CUSTOM_INVALID = {
    "data.source": "cifar11",
    "data.image_size": "[0, 16]",
    "data.classes": "first:0",
    "model.trainable": "last:0",
    "train.finetune_trainable": "everything",
    "train.run_name": "a/b",
    "train.hosts": "[node1]",
    "name": "'..'",
}


def invalid_value(check):
    """A value that `check` refuses, derived from the constraint itself."""
    if isinstance(check, C.Range):
        if check.lo is not None:
            return check.lo if check.lo_open else check.lo - 1
        return check.hi if check.hi_open else check.hi + 1
    if isinstance(check, (C.OneOf, C.Registered)):
        return "bogus_value"
    return None


def all_fields(cls=C.Config, prefix=""):
    """(dotted key, field) of every config key, nested sections (data.sampler) included."""
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory):
            yield from all_fields(f.default_factory, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f


def constrained_keys():
    for name, f in all_fields():
        check = f.metadata.get("check")
        if check is None:
            continue
        value = CUSTOM_INVALID.get(name, invalid_value(check))
        assert value is not None, f"add an invalid value for {name} to CUSTOM_INVALID"
        yield name, value


KEYS = list(constrained_keys())


def test_every_key_of_every_section_is_constrained_or_free_text():
    """A new key must declare a check, unless its type alone says everything (bool, free text)."""
    # data.options, model.kwargs: checked against the data set's declaration / the builder's signature
    free = {"data.data_dir", "data.options", "model.weights", "model.kwargs", "train.log_dir", "plugins"}
    for name, f in all_fields():
        if f.type is bool or name in free:
            continue
        assert f.metadata.get("check") is not None, f"{name} has no range or choice list"


@pytest.mark.parametrize("name, value", KEYS, ids=[k for k, _ in KEYS])
def test_dry_run_and_real_run_refuse_the_same_invalid_value(name, value, cli, user_error, tmp_path):
    args = ["--set", "data.source=synthetic", "--set", f"train.log_dir={tmp_path / 'logs'}", "--set", f"{name}={value}"]
    dry = user_error(cli("train", "--dry-run", *args), name)
    real = user_error(cli("train", *args), name)
    assert dry == real
    assert not (tmp_path / "logs").exists(), "a refused run left a run directory behind"


@pytest.mark.parametrize(
    "sets, fragment",
    [
        (["optim.lr=-1"], "optim.lr must be > 0"),
        (["loss.label_smoothing=5"], "loss.label_smoothing must be in [0, 1)"),
        (["train.jit_compile=maybe"], "train.jit_compile must be one of true, false, auto"),
        (["train.early_stop_patience=-1"], "train.early_stop_patience must be >= 1 or null"),
        (["model.weights=imagenet"], "has no pretrained weights"),
        (["loss.name=focall"], 'Did you mean "focal"?'),
        (["optim.name=adamm"], "kerasclf optimizers"),
        (["optim.schedule=step", "optim.warmup_epochs=1"], "does not take optim.warmup_epochs"),
        (["optim.warmup_epochs=20", "train.epochs=5"], "shorter than train.epochs"),
        (["optim.name=sgd", "optim.nesterov=true"], "needs optim.momentum > 0"),
        (["train.monitor=test_accuracy"], "eval_test_each_epoch"),
        (["data.val_fraction=0.6", "data.test_fraction=0.5"], "nothing would be left"),
        (["model.weights=/no/such/file.weights.h5"], "does not exist"),
    ],
)
def test_values_that_used_to_be_accepted_are_refused(sets, fragment, cli, user_error, tmp_path):
    args = ["train", "--dry-run", "--set", "data.source=synthetic", "--set", f"train.log_dir={tmp_path}"]
    for s in sets:
        args += ["--set", s]
    user_error(cli(*args), fragment)


def test_loss_name_does_what_it_says(tmp_path):
    """loss.name=focal compiles a focal loss (not silently cross-entropy)."""
    import keras

    from kerasclf.losses import build_loss

    loss, labels = build_loss(C.load_config(None, ["loss.name=focal"]))
    assert isinstance(loss, keras.losses.CategoricalFocalCrossentropy) and labels == "one_hot"
    loss, labels = build_loss(C.load_config(None, ["loss.label_smoothing=0.1"]))
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and labels == "one_hot"
    loss, labels = build_loss(C.load_config(None, []))
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy) and labels == "sparse"
