"""Config: typed sections, unknown keys with suggestions, --set coercion, save/reload."""

import dataclasses

import pytest
import yaml

from kerasclf.config import Config, dump_config, from_dict, load_config, parse_override, to_dict
from kerasclf.errors import ConfigError


def config_error(overrides=(), path=None):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


# --- unknown keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key, where, suggestion",
    [
        ("seeed=1", "seeed", "the top level", "seed"),
        ("trian.epochs=3", "trian", "the top level", "train"),
        ("train.epoch=3", "epoch", "section 'train'", "epochs"),
        ("data.batchsize=8", "batchsize", "section 'data'", "batch_size"),
        ("optim.momentun=0.9", "momentun", "section 'optim'", "momentum"),
        ("augment.flipp=true", "flipp", "section 'augment'", "flip"),
    ],
)
def test_unknown_key_names_key_section_and_closest(override, key, where, suggestion):
    message = config_error([override])
    assert f"'{key}'" in message
    assert where in message
    assert f'Did you mean "{suggestion}"?' in message


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("data: {source: digits}\ntrain: {epochs: 2, log_dri: runs}\n")
    message = config_error(path=path)
    assert "'log_dri'" in message and "section 'train'" in message and '"log_dir"' in message


def test_unknown_key_without_close_match_lists_valid_keys():
    message = config_error(["loss.zzzzzz=1"])
    assert "Did you mean" not in message
    assert "Valid keys there: name, label_smoothing, focal_gamma, aux," in message


def test_model_section_accepts_builder_kwargs_for_later_checking():
    # The model section is open: builder keywords pass here and are checked against the
    # builder's signature when the model is built (see test_cli for the error).
    cfg = load_config(None, ["model.name=cnn", "model.filters=[8, 16]", "model.batch_norm=true"])
    assert cfg.model.kwargs == {"filters": [8, 16], "batch_norm": True}


def test_model_builder_kwarg_typo_names_key_model_and_closest():
    message = config_error(["model.name=cnn", "model.dropuot=0.3"])
    assert "'dropuot'" in message and "section 'model'" in message and "'cnn'" in message
    assert 'Did you mean "dropout"?' in message
    # A key of another builder is refused for this one.
    assert "'filters'" in config_error(["model.name=mlp", "model.filters=[8]"])


# --- wrong types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=ten", "train.epochs must be int"),
        ("train.epochs=2.5", "train.epochs must be int"),
        ("train.epochs=true", "train.epochs must be int"),
        ("optim.lr=fast", "optim.lr must be float"),
        ("optim.nesterov=maybe", "optim.nesterov must be true or false"),
        ("data.image_size=[a, b]", "data.image_size must be list of int or null"),
        ("data.limit_per_class=[1]", "data.limit_per_class must be int or null"),
        ("data=5", "data must be a mapping"),
    ],
)
def test_wrong_type_names_expected_type(override, expected):
    assert expected in config_error([override])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("data.image_size=[16]", "data.image_size must be [height, width]"),
        ("data.image_size=[0, 16]", "data.image_size must be [height, width]"),
        ("data.limit_per_class=0", "data.limit_per_class must be >= 1 or null"),
        ("data.val_fraction=1", "data.val_fraction must be in [0, 1)"),
        ("data.test_fraction=-0.1", "data.test_fraction must be in [0, 1)"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("seed=-1", "seed must be in [0, 4294967295]"),
    ],
)
def test_out_of_range_value_is_refused(override, expected):
    assert expected in config_error([override])


def test_wrong_type_in_yaml_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: [1, 2]\n")
    assert "train.epochs must be int, got [1, 2]" in config_error(path=path)


def test_config_file_errors(tmp_path):
    assert "does not exist" in config_error(path=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 2\n")
    assert "not valid YAML" in config_error(path=bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    assert "must hold a mapping" in config_error(path=listy)


def test_set_needs_key_equals_value():
    assert "KEY=VALUE" in config_error(["train.epochs"])


# --- --set coercion --------------------------------------------------------------------


def test_set_coerces_scalars_lists_and_null():
    cfg = load_config(
        None,
        [
            "train.epochs=3",  # int
            "optim.lr=1e-2",  # YAML 1.1 reads this as a string; float() still takes it
            "optim.momentum=0.9",
            "optim.clipnorm=1",  # int -> float
            "optim.nesterov=yes",  # bool spellings
            "train.evaluate_after=false",
            "data.image_size=[16, 16]",  # list
            "data.limit_per_class=null",
            "train.run_name=~",
            "train.jit_compile=auto",  # bool-or-str keeps the word
            "data.source=folder:/tmp/x",  # ':' and '/' survive
        ],
    )
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert cfg.optim.lr == pytest.approx(0.01) and type(cfg.optim.lr) is float
    assert cfg.optim.momentum == pytest.approx(0.9)
    assert cfg.optim.clipnorm == 1.0 and type(cfg.optim.clipnorm) is float
    assert cfg.optim.nesterov is True
    assert cfg.train.evaluate_after is False
    assert cfg.data.image_size == [16, 16]
    assert cfg.data.limit_per_class is None and cfg.train.run_name is None
    assert cfg.train.jit_compile == "auto"
    assert cfg.data.source == "folder:/tmp/x"
    assert load_config(None, ["train.jit_compile=false"]).train.jit_compile is False


def test_set_list_forms_and_classes():
    assert load_config(None, ["data.image_size=24,20"]).data.image_size == [24, 20]
    assert load_config(None, ["data.classes=[cat, dog]"]).data.classes == ["cat", "dog"]
    assert load_config(None, ["data.classes=cat,dog"]).data.classes == ["cat", "dog"]
    # 'first:N' must stay a string, not become the one-name list ['first:3'].
    assert load_config(None, ["data.classes=first:3"]).data.classes == "first:3"


def test_set_overrides_file_values_and_can_null_them(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("data: {source: digits, limit_per_class: 5, batch_size: 32}\ntrain: {epochs: 7}\n")
    cfg = load_config(path, ["train.epochs=1", "data.limit_per_class=null"])
    assert cfg.train.epochs == 1
    assert cfg.data.limit_per_class is None
    assert cfg.data.batch_size == 32  # untouched keys keep the file's value
    assert cfg.optim.lr == Config().optim.lr  # and absent ones the default


def test_parse_override_splits_on_first_equals_only():
    assert parse_override("train.run_name=a=b") == (["train", "run_name"], "a=b")


# --- saved config ----------------------------------------------------------------------


def test_dump_and_reload_gives_equal_config(tmp_path):
    cfg = load_config(
        None,
        [
            "name=round_trip", "seed=7", "data.source=synthetic", "data.image_size=[16, 16]",
            "data.classes=first:2", "model.name=cnn", "model.filters=[8]", "model.batch_norm=true",
            "optim.name=sgd", "optim.momentum=0.9", "augment.flip=true", "train.jit_compile=false",
        ],
    )
    path = tmp_path / "config.yaml"
    dump_config(cfg, path)
    saved = yaml.safe_load(path.read_text())
    assert saved["model"]["filters"] == [8]  # builder kwargs written flat, as a user writes them
    assert "kwargs" not in saved["model"]
    reloaded = load_config(path)
    assert reloaded == cfg
    assert reloaded != dataclasses.replace(cfg, seed=8)  # equality is not vacuous


def test_every_shipped_config_loads():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    configs = sorted(p for p in root.rglob("*.yaml") if p.parent.name != "studies")  # studies: sweep files
    assert configs
    for path in configs:
        cfg = load_config(path)
        assert from_dict(to_dict(cfg)) == cfg, path
