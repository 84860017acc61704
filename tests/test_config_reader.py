"""The one YAML reader (configs and study files alike) and the checks it adds to yaml.safe_load."""

import pytest

from kerasclf.config import load_config, parse_override, to_dict
from kerasclf.errors import ConfigError
from kerasclf.studies.sweep import load_study_file, plan_sweep


def write(tmp_path, text, name="c.yaml", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def refusal(call, *args):
    with pytest.raises(ConfigError) as info:
        call(*args)
    return str(info.value)


@pytest.mark.parametrize("reader", [load_config, load_study_file], ids=["config", "study"])
def test_a_key_written_twice_is_refused_with_both_lines(tmp_path, reader):
    message = refusal(reader, write(tmp_path, "name: a\nbase:\n  seed: 1\n  seed: 2\n"))
    assert "'seed' is written twice" in message and "lines 3 and 4" in message
    message = refusal(reader, write(tmp_path, "name: a\nseed: 1\nname: b\n"))
    assert "'name' is written twice" in message and "lines 1 and 3" in message


def test_a_key_twice_in_an_inline_mapping_is_refused(tmp_path):
    message = refusal(load_config, write(tmp_path, "train: {epochs: 1, epochs: 2}\n"))
    assert "'epochs' is written twice" in message and "lines 1 and 1" in message


def test_the_same_key_in_two_sections_is_not_a_duplicate(tmp_path):
    cfg = load_config(write(tmp_path, "data:\n  source: synthetic\nmodel:\n  name: mlp\ntrain:\n  epochs: 2\n"))
    assert (cfg.data.source, cfg.model.name, cfg.train.epochs) == ("synthetic", "mlp", 2)


@pytest.mark.parametrize("reader", [load_config, load_study_file], ids=["config", "study"])
@pytest.mark.parametrize("text", ["", "\n# only a comment\n"], ids=["empty", "comment"])
def test_an_empty_file_is_refused(tmp_path, reader, text):
    assert "is empty" in refusal(reader, write(tmp_path, text))


def test_a_study_file_gets_the_utf8_and_mapping_checks(tmp_path):
    assert "not UTF-8" in refusal(load_study_file, write(tmp_path, "name: caf\u00e9\n", encoding="latin-1"))
    assert "must hold a mapping" in refusal(load_study_file, write(tmp_path, "- a\n- b\n"))
    base = write(tmp_path, "name: caf\u00e9\n", name="base.yaml", encoding="latin-1")
    assert "not UTF-8" in refusal(plan_sweep, str(base))


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
@pytest.mark.parametrize("where", ["optim.lr", "loss.margin", "augment.mixup", "optim.clipnorm"])
def test_non_finite_numbers_are_refused(tmp_path, where, value):
    section, name = where.split(".")
    from_file = refusal(load_config, write(tmp_path, f"{section}:\n  {name}: {value}\n"))
    from_set = refusal(load_config, None, [f"{where}={value}"])
    for message in (from_file, from_set):
        assert message.startswith(f"{where} must be a finite number")


def test_a_finite_number_still_reads(tmp_path):
    cfg = load_config(write(tmp_path, "optim:\n  lr: 1.0e+3\n  clipnorm: 2\n"))
    assert (cfg.optim.lr, cfg.optim.clipnorm) == (1000.0, 2.0)


def test_set_values_use_the_strict_reader():
    assert "'a' is written twice" in refusal(parse_override, "model.kwargs={a: 1, a: 2}")


def test_a_data_set_option_belongs_to_its_data_set(tmp_path):
    cfg = load_config(None, ["data.source=svhn", "data.svhn_extra=true"])
    assert cfg.data.options == {"svhn_extra": True} and to_dict(cfg)["data"]["svhn_extra"] is True
    message = refusal(load_config, None, ["data.source=cifar10", "data.svhn_extra=true"])
    assert message.startswith("data.svhn_extra is an option of data set svhn, not of 'cifar10'")
    assert "must be true or false" in refusal(load_config, None, ["data.source=svhn", "data.svhn_extra=maybe"])


def test_config_yaml_of_older_runs_still_loads(tmp_path):
    """Older versions wrote `svhn_extra: false` into every run's config.yaml."""
    cfg = load_config(write(tmp_path, "data:\n  source: synthetic\n  svhn_extra: false\n"))
    assert cfg.data.options == {} and "svhn_extra" not in to_dict(cfg)["data"]


def test_an_older_run_compares_equal_to_its_config_of_this_version(tmp_path):
    """A sweep re-run and `kerasclf compare` must not see svhn_extra: false as a difference."""
    from kerasclf.config import dump_config, without_retired_keys
    from kerasclf.studies.runs import flatten, load_run
    from kerasclf.studies.sweep import _config_differences

    cfg = load_config(None, ["data.source=synthetic"])
    run = tmp_path / "run"
    run.mkdir()
    dump_config(cfg, run / "config.yaml")
    current = to_dict(cfg)
    old = {**current, "data": {**current["data"], "svhn_extra": False}}
    (run / "config.yaml").write_text(__import__("yaml").safe_dump(old))
    assert _config_differences(run, current) == []
    assert flatten(load_run(run).config) == flatten(current)
    changed = {**current, "data": {**current["data"], "svhn_extra": True}}
    assert without_retired_keys(changed) == changed  # only the old default is dropped
