"""Issue #8, console and checkpoints: one readable line per epoch off a terminal, TensorFlow's
start-up lines once, a fast and quiet model listing, epochs numbered from 1 everywhere, and
no "best" checkpoint chosen on training accuracy."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kerasclf.console import filter_startup_lines
from kerasclf.training.progress import fit_verbosity

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]

# What `import tensorflow` and the first device query print on this project's CPU machine
# (TensorFlow 2.21), captured from file descriptor 2.
CAPTURED = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795459586.069094    7914 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795459586.069421    7914 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795459586.654618    7914 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795459587.956089    7914 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795459587.956772    7914 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1795459589.530576    7914 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_startup_noise_is_dropped_on_a_cpu_machine():
    assert filter_startup_lines(CAPTURED, have_gpu=False, min_level=2) == ""


def test_startup_info_lines_are_kept_once_when_asked_for():
    kept = filter_startup_lines(CAPTURED, have_gpu=False, min_level=0).splitlines()
    assert sum("oneDNN" in line for line in kept) == 1 and sum("cuda drivers" in line for line in kept) == 1
    assert any(line.startswith("To enable") for line in kept)  # the continuation of a kept line
    assert not any("absl::InitializeLog" in line for line in kept)
    assert not any("cuInit" in line for line in kept)


def test_startup_errors_that_matter_are_kept():
    real = "E0000 00:00:1795459589.530576    7914 some_op.cc:12] could not open libcudnn.so\n"
    assert filter_startup_lines(CAPTURED + real, have_gpu=False, min_level=2) == real
    # with a GPU present, a failing cuInit is a real problem
    assert "cuInit" in filter_startup_lines(CAPTURED, have_gpu=True, min_level=2)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbosity_follows_the_terminal():
    verbose, callbacks = fit_verbosity("auto", Terminal())
    assert verbose == 0 and type(callbacks[0]).__name__ == "MetricsProgbar"  # Keras's bar, metrics only
    verbose, callbacks = fit_verbosity("auto", io.StringIO())
    assert verbose == 0 and type(callbacks[0]).__name__ == "EpochLine"
    verbose, callbacks = fit_verbosity(1, io.StringIO())
    assert verbose == 0 and type(callbacks[0]).__name__ == "MetricsProgbar"
    assert fit_verbosity(0, Terminal()) == (0, [])


def run_cli(args, stdout=subprocess.PIPE, timeout=400):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
    return subprocess.run(
        [sys.executable, "-m", "kerasclf.cli", *map(str, args)], cwd=REPO, env=env,
        stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout,
    )


def assert_one_readable_line_per_epoch(text, epochs):
    assert "\r" not in text and "\x1b" not in text and "\b" not in text, repr(text[:300])
    lines = [line for line in text.splitlines() if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in lines] == [f"Epoch {e}/{epochs}" for e in range(1, epochs + 1)]
    for line in lines:
        assert "loss " in line and "accuracy " in line and "val_accuracy " in line and line.endswith(" s"), line


def assert_no_line_twice(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), stderr
    assert "failed call to cuInit" not in stderr or "GPU" in stderr


@pytest.mark.slow
def test_demo_piped_to_a_file_is_one_readable_line_per_epoch(tmp_path):
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        done = run_cli(["train", "--config", "configs/digits/demo.yaml", *sets("train.epochs=2", f"train.log_dir={tmp_path}")], out)
    assert done.returncode == 0, done.stderr
    assert_one_readable_line_per_epoch(log.read_text(), 2)
    assert_no_line_twice(done.stderr)
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr


@pytest.mark.realdata
@pytest.mark.slow
def test_cifar_folder_run_piped_to_a_file_is_one_readable_line_per_epoch(tmp_path):
    from test_train_evaluate import CIFAR10_JPEG, _extract_subset

    if not CIFAR10_JPEG.is_file():
        pytest.skip(f"{CIFAR10_JPEG} is not here")
    root = _extract_subset(CIFAR10_JPEG, tmp_path / "cifar3", ["cat", "dog", "ship"], per_class=60)
    log = tmp_path / "cifar.log"
    with open(log, "w") as out:
        done = run_cli(["train", *sets(f"data.source=folder:{root}", "data.val_fraction=0.2", *TINY,
                                       "train.epochs=2", f"train.log_dir={tmp_path}")], out)
    assert done.returncode == 0, done.stderr
    assert_one_readable_line_per_epoch(log.read_text(), 2)
    assert_no_line_twice(done.stderr)


@pytest.mark.slow
def test_train_startup_lines_appear_at_most_once(tmp_path):
    done = run_cli(["train", "--dry-run", *sets("data.source=synthetic", *TINY)])
    assert done.returncode == 0, done.stderr
    assert_no_line_twice(done.stderr)
    assert "absl::InitializeLog" not in done.stderr


def test_models_lists_without_importing_keras_or_tensorflow():
    code = (
        "import sys\nfrom kerasclf.cli import main\n"
        "try:\n    main(['models'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'keras_hub', 'jax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"
    assert done.stderr == ""  # nothing from TensorFlow


def test_model_catalogue_matches_the_registry():
    from kerasclf.catalogue import catalogue
    from kerasclf.models import load_builtin_models

    listed = [(e.name, e.description, e.meta) for e in catalogue()]
    registered = [(e.name, e.description, e.meta) for e in load_builtin_models().entries()]
    assert listed == registered and len(listed) >= 8


def read_history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_history_epochs_count_from_one_like_best_epoch_and_the_console(cli, tmp_path):
    result = cli("train", *sets("data.source=synthetic", *TINY, "train.epochs=3", "optim.lr=0.01",
                                f"train.log_dir={tmp_path}", "train.run_name=r", "train.evaluate_after=false"))
    assert result.exit_code == 0, (result.output, result.exception)
    history = read_history(tmp_path / "r" / "history.csv")
    assert [row["epoch"] for row in history] == ["1", "2", "3"]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    best_row = max(history, key=lambda row: float(row["val_accuracy"]))
    assert int(best_row["epoch"]) == metrics["best_epoch"]
    assert float(best_row["val_accuracy"]) == pytest.approx(metrics["best_val_accuracy"])
    assert_one_readable_line_per_epoch(result.stdout, 3)  # CliRunner's stdout is no terminal


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_without_validation_only_the_last_checkpoint_is_kept_and_said(cli, tmp_path):
    with pytest.warns(UserWarning, match="no validation split .* keeps only last.keras"):
        result = cli("train", *sets("data.source=synthetic", "data.val_fraction=0", *TINY, "train.epochs=2",
                                    "train.verbose=0", f"train.log_dir={tmp_path}", "train.run_name=r"))
    assert result.exit_code == 0, (result.output, result.exception)
    run = tmp_path / "r"
    assert (run / "last.keras").is_file() and not (run / "best.keras").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] is None and metrics["checkpoint"] == "last.keras"
    assert metrics["test_accuracy"] is not None
    report = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert report["checkpoint"].endswith("last.keras")


@pytest.mark.slow
def test_a_training_metric_chosen_on_purpose_keeps_best(cli, tmp_path, recwarn):
    result = cli("train", *sets("data.source=synthetic", "data.val_fraction=0", *TINY, "train.epochs=2",
                                "train.monitor=loss", "train.verbose=0", "train.evaluate_after=false",
                                f"train.log_dir={tmp_path}", "train.run_name=r"))
    assert result.exit_code == 0, (result.output, result.exception)
    assert (tmp_path / "r" / "best.keras").is_file()
    assert not [w for w in recwarn if "last.keras" in str(w.message)]


def test_catalogue_reads_literal_decorators_and_falls_back_otherwise(tmp_path, monkeypatch):
    from kerasclf.catalogue import catalogue

    (tmp_path / "lit_models.py").write_text(
        "import keras_that_does_not_exist\n"
        "@MODELS.register('b', description='bee', input_size=(2, 3))\ndef b(x): pass\n"
        "@MODELS.register('a')\ndef a(x):\n    '''Ay model.\n\n    More.'''\n"
    )
    (tmp_path / "computed_models.py").write_text("NAME = 'c'\n@MODELS.register(NAME)\ndef c(x): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    listed = catalogue(["lit_models"], ("MODELS.register",), load=lambda: "imported")
    assert [(e.name, e.description, e.meta) for e in listed] == [("a", "Ay model.", {}), ("b", "bee", {"input_size": (2, 3)})]
    assert catalogue(["lit_models", "computed_models"], ("MODELS.register",), load=lambda: "imported") == "imported"
