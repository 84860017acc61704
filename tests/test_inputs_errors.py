"""Issue #8, messages instead of tracebacks: bad encodings, bad --set keys, unwritable or
invalid folders (checked before any data is loaded), read-only run directories, bad options."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerasclf.config import load_config
from kerasclf.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.name=cnn", "--set", "model.filters=[8]", "--set", "model.dense=[16]"]


def test_non_utf8_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\ntrain: {epochs: 1}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at position 9\); save it as UTF-8"):
        load_config(path)


@pytest.mark.parametrize("text", ["=5", ".=5", "train.=5", ".epochs=5", "train..epochs=5", " =5"])
def test_set_with_an_empty_key_part_is_a_config_error(cli, user_error, text):
    user_error(cli("train", "--dry-run", "--set", text), "--set", "section.key")


@pytest.mark.parametrize("text", ["data.image_size=[1,", "train.epochs={", "name=a: b: c"])
def test_set_with_a_value_that_is_not_yaml_is_a_config_error(cli, user_error, text):
    user_error(cli("train", "--dry-run", "--set", text), "not valid YAML", "quote it")


def test_evaluate_negative_batch_size_is_a_usage_error(cli, tmp_path):
    for value in ("-3", "0"):
        result = cli("evaluate", "--checkpoint", tmp_path / "x.keras", "--batch-size", value)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "--batch-size" in result.stderr and "x>=1" in result.stderr


def test_log_dir_under_a_file_is_refused_before_loading_data(cli, user_error, tmp_path, monkeypatch):

    (tmp_path / "notes.txt").write_text("x")
    loaded = []
    monkeypatch.setattr("kerasclf.training.assemble.build_dataset", lambda *a, **k: loaded.append(a))
    for dry in ([], ["--dry-run"]):
        user_error(cli("train", *dry, "--set", "data.source=synthetic", "--set", f"train.log_dir={tmp_path / 'notes.txt' / 'logs'}"),
                   "train.log_dir", "is a file, not a folder")
    assert not loaded


def _without_root(argv):
    """The command as a user without root's override of file permissions: as root, through a
    user namespace (`unshare -U`), where a chmod 555 folder really is read-only."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode:
        pytest.skip("running as root without user namespaces: chmod cannot make a folder read-only")
    return ["unshare", "-U", *argv]


def run_cli(*args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        _without_root([sys.executable, "-m", "kerasclf.cli", *map(str, args)]),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def read_only(tmp_path):
    made = []

    def make(path):
        path.mkdir(parents=True, exist_ok=True)
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        made.append(path)
        return path

    yield make
    for path in made:
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)


@pytest.mark.slow
def test_read_only_log_dir_is_refused_before_loading_data(tmp_path, read_only):
    logs = read_only(tmp_path / "ro")
    done = run_cli("train", "--dry-run", "--set", "data.source=folder:/nowhere", "--set", f"train.log_dir={logs}/runs")
    assert done.returncode == 2, done.stderr
    # the log_dir check comes first: the missing data folder is not reached
    # stage notes may come first; the error comes before any data is listed or decoded
    errors = [line for line in done.stderr.splitlines() if not line.startswith("Note: Starting")]
    assert errors[0].startswith("Error: train.log_dir") and "is not writable" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_evaluate_in_a_read_only_run_directory(cli, tmp_path, read_only):
    logs = tmp_path / "logs"
    result = cli("train", "--set", "data.source=synthetic", "--set", "data.classes=first:2", *TINY,
                 "--set", "train.epochs=1", "--set", "train.verbose=0", "--set", "train.evaluate_after=false",
                 "--set", f"train.log_dir={logs}", "--set", "train.run_name=r")
    assert result.exit_code == 0, result.output
    run = read_only(logs / "r")
    done = run_cli("evaluate", "--checkpoint", run / "best.keras")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "The report folder" in done.stderr and "not writable" in done.stderr and "--out" in done.stderr
    done = run_cli("evaluate", "--checkpoint", run / "best.keras", "--out", tmp_path / "reports")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reports" / "report.md").is_file()
    assert "Warning: The evaluation is not added to the run's TensorBoard" in done.stderr
    assert "Traceback" not in done.stderr
