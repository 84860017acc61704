"""The `kerasclf` command: fast help, listings, --dry-run, and user errors as exit code 2."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _kerasclf_command():
    script = Path(sys.executable).parent / "kerasclf"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kerasclf"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --- start-up cost ---------------------------------------------------------------------------


def test_help_is_fast_in_a_fresh_process():
    command = _kerasclf_command() + ["--help"]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=60)
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr
        for name in ("train", "evaluate", "datasets", "models"):
            assert name in done.stdout
    assert min(times) < 1.0, f"kerasclf --help took {min(times):.2f}s at best (of {times})"


def test_importing_the_cli_imports_no_framework():
    code = (
        "import sys, kerasclf.cli\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr


def test_user_error_in_a_real_process_is_exit_2_without_traceback():
    done = subprocess.run(
        _kerasclf_command() + ["train", "--set", "train.epoch=1"],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: Unknown config key 'epoch' in section 'train'.")
    assert 'Did you mean "epochs"?' in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# --- listings ----------------------------------------------------------------------------------


def test_datasets_lists_each_registered_name_once(cli):
    from kerasclf.data import load_builtin_datasets

    result = cli("datasets")
    assert result.exit_code == 0, result.output
    first_words = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    names = load_builtin_datasets().names()
    assert {"cifar10", "cifar100", "digits", "synthetic"} <= set(names)
    assert first_words == names + ["folder:<path>"]


def test_models_lists_each_registered_name_once(cli):
    from kerasclf.models import load_builtin_models

    result = cli("models")
    assert result.exit_code == 0, result.output
    first_words = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    names = load_builtin_models().names()
    assert {"mlp", "cnn", "resnet9"} <= set(names)
    assert first_words == names
    for line in result.stdout.splitlines():
        assert len(line.split(None, 1)) == 2, f"no description: {line!r}"


# --- train --dry-run -------------------------------------------------------------------------


def test_dry_run_prints_summary_and_writes_nothing(cli, tmp_path, tiny_cnn):
    logs = tmp_path / "logs"
    result = cli(
        "train", "--dry-run", "--set", "data.source=synthetic", "--set", "data.val_fraction=0.25",
        *tiny_cnn, "--set", f"train.log_dir={logs}",
    )
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "synthetic"
    assert summary["class_names"] == ["class0", "class1", "class2", "class3"]
    assert summary["num_classes"] == 4
    assert (summary["train_size"], summary["val_size"], summary["test_size"]) == (300, 100, 100)
    assert summary["model"] == "cnn"
    # conv3x3(3->8)x2, then dense(8*16*16 -> 16), then dense(16 -> 4), with biases
    expected = (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 8 + 8) + (8 * 16 * 16 * 16 + 16) + (16 * 4 + 4)
    assert summary["params_total"] == expected
    assert summary["params_trainable"] == expected
    assert not logs.exists()


def test_dry_run_on_a_folder_with_a_config_file(cli, tmp_path, make_image_folder, tiny_cnn):
    root = make_image_folder(tmp_path / "pets", {"cat": 6, "dog": 4})
    config = tmp_path / "exp.yaml"
    config.write_text(f"data: {{source: 'folder:{root}', image_size: [16, 16], val_fraction: 0.5}}\nmodel: {{name: mlp, units: [8]}}\n")
    result = cli("train", "--config", config, "--dry-run", "--set", f"train.log_dir={tmp_path / 'logs'}")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["class_names"] == ["cat", "dog"]
    assert summary["image_size"] == [16, 16]
    assert (summary["train_size"], summary["val_size"], summary["test_size"]) == (5, 5, 0)
    assert summary["model"] == "mlp"
    assert summary["params_total"] == (16 * 16 * 3 * 8 + 8) + (8 * 2 + 2)
    assert not (tmp_path / "logs").exists()


# --- user errors: exit code 2, one paragraph, no traceback -------------------------------------------


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["train.epoch=1"], ["'epoch'", "section 'train'", '"epochs"']),
        (["seeed=1"], ["'seeed'", "top level", '"seed"']),
        (["train.epochs=ten"], ["train.epochs must be int"]),
        (["data.source=cifar11"], ["'cifar11'", '"cifar10"', "kerasclf datasets"]),
        (["model.name=cnnn"], ["'cnnn'", '"cnn"', "kerasclf models"]),
        (["model.name=cnn", "model.dropuot=0.3"], ["'dropuot'", "'model'", '"dropout"']),
        (["model.name=mlp", "model.filters=[8]"], ["'filters'", "'mlp'"]),
        (["data.classes=[class0, klass9]"], ["'klass9'"]),
        (["train.monitor=val_acc"], ["'val_acc'", '"val_accuracy"']),
        (["data.image_size=[16]"], ["data.image_size"]),
    ],
)
def test_bad_train_input_is_a_clean_error(cli, user_error, tmp_path, overrides, fragments):
    args = ["train", "--dry-run", "--set", "data.source=synthetic", "--set", f"train.log_dir={tmp_path}"]
    for override in overrides:
        args += ["--set", override]
    user_error(cli(*args), *fragments)


def test_missing_config_file_is_a_clean_error(cli, user_error, tmp_path):
    user_error(cli("train", "--config", tmp_path / "nope.yaml"), "nope.yaml", "does not exist")


def test_empty_folder_is_a_clean_error(cli, user_error, tmp_path):
    (tmp_path / "empty").mkdir()
    user_error(
        cli("train", "--dry-run", "--set", f"data.source=folder:{tmp_path / 'empty'}"),
        str(tmp_path / "empty"), "no class folders",
    )


def test_missing_cifar_archive_is_a_clean_error(cli, user_error, tmp_path):
    err = user_error(
        cli("train", "--dry-run", "--set", "data.source=cifar10", "--data-dir", tmp_path / "cache"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        str(tmp_path / "cache" / "cifar-10-python.tar.gz"),
    )
    assert "URLError" in err


def test_missing_checkpoint_is_a_clean_error(cli, user_error, tmp_path):
    user_error(cli("evaluate", "--checkpoint", tmp_path / "run" / "best.keras"), "best.keras", "does not exist")


def test_unreadable_checkpoint_is_a_clean_error(cli, user_error, tmp_path):
    garbage = tmp_path / "run" / "best.keras"
    garbage.parent.mkdir()
    garbage.write_bytes(os.urandom(2048))
    user_error(cli("evaluate", "--checkpoint", garbage), str(garbage), "Could not read checkpoint")


def test_keras_file_that_is_not_kerasclf_is_a_clean_error(cli, user_error, tmp_path):
    import keras

    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    path = tmp_path / "plain.keras"
    plain.save(path)
    user_error(cli("evaluate", "--checkpoint", path), "not a kerasclf one")


@pytest.mark.slow
def test_checkpoint_classes_must_match_the_data(cli, user_error, tmp_path, make_image_folder, tiny_cnn):
    train_root = make_image_folder(tmp_path / "ab", {"a": 12, "b": 12})
    other_root = make_image_folder(tmp_path / "ac", {"a": 4, "c": 4})
    logs = tmp_path / "logs"
    result = cli(
        "train", "--set", f"data.source=folder:{train_root}", "--set", "data.val_fraction=0.25",
        "--set", "train.epochs=1", "--set", "train.verbose=0",
        "--set", f"train.log_dir={logs}", "--set", "train.run_name=ab", *tiny_cnn,
    )
    assert result.exit_code == 0, (result.output, result.exception)
    checkpoint = logs / "ab" / "best.keras"
    assert checkpoint.is_file()
    # train.evaluate_after (the default) reports on val, as this data has no test split
    assert f"Report: {logs / 'ab' / 'eval' / 'val' / 'report.md'}" in result.stdout
    assert (logs / "ab" / "eval" / "val" / "report.md").is_file()
    user_error(
        cli("evaluate", "--checkpoint", checkpoint, "--split", "train", "--data", f"folder:{other_root}"),
        "[a, b]", "[a, c]",
    )
    assert not (logs / "ab" / "eval" / "train").exists()
    # the same checkpoint on data with the right classes works
    same = tmp_path / "ab2"
    make_image_folder(same / "train", {"a": 2, "b": 2})
    make_image_folder(same / "test", {"a": 3, "b": 4})
    ok = cli("evaluate", "--checkpoint", checkpoint, "--split", "test", "--data", f"folder:{same}")
    assert ok.exit_code == 0, (ok.output, ok.exception)
    assert "on 7 images" in ok.stdout
    # a split the data does not have is a clean error too
    user_error(
        cli("evaluate", "--checkpoint", checkpoint, "--split", "test", "--data", f"folder:{train_root}"),
        "no 'test' split",
    )
