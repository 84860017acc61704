"""Stopping and resuming a run in-process: Ctrl-C, a non-finite loss, a full disk, refused resumes.

The signal here is a real SIGINT sent to this process from inside a training step; the
SIGKILL / SIGTERM tests with separate processes are in test_crash_resume.py.
"""

import csv
import errno
import json
import os
import signal

import numpy as np
import pytest

TINY = [
    "data.source=digits", "data.limit_per_class=40", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
    "train.verbose=0", "train.evaluate_after=false", "train.deterministic=true", "augment.flip=true",
]
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def columns(rows):
    return {k: [row[k] for row in rows] for k in ("epoch", *METRICS)}


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def interrupt_at(monkeypatch, epoch, batch=1, signum=signal.SIGINT):
    """Send `signum` to this process at the end of batch `batch` of epoch `epoch` (0-based), once."""
    from kerasclf.runs.stops import StopOnNonFinite

    original = StopOnNonFinite.on_train_batch_end
    sent = []

    def patched(self, b, logs=None):
        original(self, b, logs)
        if self.epoch == epoch and b == batch and not sent:
            sent.append(True)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", patched)


def tensorboard_steps(run, tag="epoch_loss"):
    """Steps of `tag` over every training event file of the run (TensorFlow only)."""
    tf = pytest.importorskip("tensorflow")
    steps = []
    for path in sorted((run / "tensorboard" / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Uninterrupted runs per (phase-layout) key, made once: {key: run_dir}."""
    made = {}

    def get(key, *overrides):
        if key not in made:
            from click.testing import CliRunner

            from kerasclf.cli import main

            logs = tmp_path_factory.mktemp("reference")
            result = CliRunner().invoke(main, ["train", *sets(*TINY, *overrides, f"train.log_dir={logs}", "train.run_name=ref")])
            assert result.exit_code == 0, (result.output, result.exception)
            made[key] = logs / "ref"
        return made[key]

    return get


@pytest.mark.slow
@pytest.mark.backend_agnostic
@pytest.mark.parametrize("stop_epoch", [1, 2, 3], ids=["phase1", "phase-boundary", "finetune-phase"])
def test_ctrl_c_then_resume_gives_the_uninterrupted_run(cli, user_error, tmp_path, monkeypatch, reference_runs, stop_epoch):
    phases = ("train.epochs=2", "train.finetune_epochs=2", "optim.schedule=cosine", "train.eval_test_each_epoch=true",
              "data.test_fraction=0.2")
    reference = reference_runs("finetune", *phases)
    run = tmp_path / "logs" / "run"
    interrupt_at(monkeypatch, stop_epoch, batch=0 if stop_epoch == 2 else 1)
    stopped = cli("train", *sets(*TINY, *phases, f"train.log_dir={tmp_path / 'logs'}", "train.run_name=run"))

    assert stopped.exit_code == 130, (stopped.output, stopped.exception)
    assert f"Ctrl-C (SIGINT) in epoch {stop_epoch + 1}" in stopped.stderr
    assert f"kerasclf train --resume {run}" in stopped.stderr
    assert [row["epoch"] for row in history(run)] == [str(e + 1) for e in range(stop_epoch)]
    assert metrics(run)["stopped"] == "SIGINT" and metrics(run)["epochs_run"] == stop_epoch

    monkeypatch.undo()
    resumed = cli("train", "--resume", run)
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    assert columns(history(run)) == columns(history(reference))  # same epochs, same numbers
    for key in ("best_val_accuracy", "best_epoch", "test_accuracy", "final_train_accuracy", "epochs_run"):
        assert metrics(run)[key] == metrics(reference)[key], key
    assert metrics(run)["sessions"] == 2 and metrics(run)["resumed_from_epoch"] == stop_epoch
    assert metrics(run)["stopped"] is None
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        assert sorted(tensorboard_steps(run)) == [1, 2, 3, 4]  # each epoch once in TensorBoard, as history.csv numbers it

    user_error(cli("train", "--resume", run), "already finished its 4 epochs")


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_non_finite_loss_stops_with_advice_and_keeps_a_loadable_checkpoint(cli, tmp_path, monkeypatch):
    from kerasclf.evaluation.evaluate import load_checkpoint
    from kerasclf.training.callbacks import EpochClock

    original = EpochClock.on_epoch_begin

    def poison(self, epoch, logs=None):  # the head's weights turn NaN as epoch 3 starts: its first loss is NaN
        original(self, epoch, logs)
        if epoch == 2:
            for weight in self.model.trainable_weights[-2:]:
                weight.assign(np.full(weight.shape, np.nan, dtype="float32"))

    monkeypatch.setattr(EpochClock, "on_epoch_begin", poison)
    run = tmp_path / "logs" / "nan"
    result = cli("train", *sets(*TINY, "train.epochs=4", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=nan"))
    assert result.exit_code == 3, (result.output, result.exception)
    err = result.stderr
    assert "Traceback" not in result.output
    assert "The training loss became nan at epoch 3, step 1 of" in err
    for advice in ("learning rate", "inputs", "mixed_float16", "--resume"):
        assert advice in err
    assert [row["epoch"] for row in history(run)] == ["1", "2"]  # the bad epoch is not logged
    assert metrics(run)["stopped"] == "non-finite loss"
    for name in ("last.keras", "best.keras"):  # epoch 2's weights: no checkpoint of the bad epoch
        model, _ = load_checkpoint(run / name)
        assert all(np.isfinite(w).all() for w in model.get_weights()), name
    assert not list(run.rglob(".tmp-*"))


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_the_run_resumes(cli, user_error, tmp_path, monkeypatch):
    from kerasclf.evaluation.evaluate import load_checkpoint
    from kerasclf.runs import atomic

    run = tmp_path / "logs" / "full"
    saves = []
    real_fsync = atomic._fsync_file

    def fsync(path):
        if os.path.basename(path).startswith(".tmp-last-"):
            saves.append(path)
            if len(saves) == 2:  # the second epoch's last.keras: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(path)

    monkeypatch.setattr(atomic, "_fsync_file", fsync)
    result = cli("train", *sets(*TINY, "train.epochs=3", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=full"))
    err = user_error(result, "No space left", str(run / "last.keras"), f"kerasclf train --resume {run}")
    assert "intact" in err
    assert not list(run.rglob(".tmp-*"))
    model, _ = load_checkpoint(run / "last.keras")  # epoch 1's, complete
    assert [row["epoch"] for row in history(run)] == ["1"]

    monkeypatch.undo()
    resumed = cli("train", "--resume", run)
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    assert [row["epoch"] for row in history(run)] == ["1", "2", "3"]


def test_resume_refuses_overrides_that_change_the_experiment(cli, user_error, tmp_path):
    from kerasclf.config import dump_config, load_config

    run = tmp_path / "run"
    run.mkdir()
    dump_config(load_config(None, ["optim.schedule=cosine"]), run / "config.yaml")
    user_error(cli("train", "--resume", run, "--set", "optim.lr=0.1"), "optim.lr", "refused", "--config")
    user_error(cli("train", "--resume", run, "--set", "train.epochs=20"), "train.epochs", "refused")
    user_error(cli("train", "--resume", run, "--config", run / "config.yaml"), "drop --config")
    user_error(cli("train", "--resume", tmp_path), "not a kerasclf run directory", "config.yaml")


def test_resume_allows_more_epochs_with_a_schedule_that_does_not_depend_on_them(tmp_path):
    from kerasclf.config import dump_config, load_config
    from kerasclf.runs.keeper import open_resume

    run = tmp_path / "run"
    run.mkdir()
    dump_config(load_config(None, ["train.epochs=3"]), run / "config.yaml")
    resume = open_resume(run, ["train.epochs=5", "train.verbose=0"])
    assert resume.cfg.train.epochs == 5 and resume.rewrite_config and resume.state is None


@pytest.mark.slow
def test_two_runs_with_the_same_seed_give_identical_metrics_with_mixup(cli, tmp_path):
    """train.deterministic: the tf.data path with its random MixUp map, twice (TensorFlow backend).

    Under JAX, MixUp runs eagerly inside tf.data's numpy_function and two runs differed in a CI
    run (they matched in others): not yet deterministic there, so not claimed (README)."""
    pytest.importorskip("tensorflow")
    runs = []
    for name in ("a", "b"):
        result = cli("train", *sets(*TINY, "train.epochs=2", "augment.mixup=0.4", f"train.log_dir={tmp_path}",
                                    f"train.run_name={name}"))
        assert result.exit_code == 0, (result.output, result.exception)
        runs.append(columns(history(tmp_path / name)))
    assert runs[0] == runs[1]
