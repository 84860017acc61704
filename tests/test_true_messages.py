"""Issue 17, part 6: each message that names a file, a key or a remedy says what is true then."""

import csv
import json
import os
import signal

import numpy as np
import pytest
from conftest import assert_user_error

TINY = ["data.source=digits", "data.limit_per_class=20", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
        "train.verbose=0", "train.evaluate_after=false", "optim.lr=0.01"]


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def poison_at(monkeypatch, bad_epoch):
    """The head's weights turn NaN as epoch `bad_epoch` (0-based) starts, once."""
    from kerasclf.training.callbacks import EpochClock

    original = EpochClock.on_epoch_begin
    done = []

    def poison(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == bad_epoch and not done:
            done.append(True)
            for weight in self.model.trainable_weights[-2:]:
                weight.assign(np.full(weight.shape, np.nan, dtype="float32"))

    monkeypatch.setattr(EpochClock, "on_epoch_begin", poison)


def command_in(text):
    """The `kerasclf train --resume ...` command a message gives, as arguments."""
    line = text[text.index("kerasclf train --resume"):].split(". ")[0].split()
    return line[1:]


@pytest.mark.slow
def test_a_non_finite_loss_in_epoch_1_names_no_checkpoint_and_its_remedy_works(cli, tmp_path, monkeypatch):
    poison_at(monkeypatch, 0)
    run = tmp_path / "logs" / "r"
    result = cli("train", *sets(*TINY, "train.epochs=2", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=r"))
    assert result.exit_code == 3, result.output
    err = result.stderr
    assert "No epoch finished" in err and "last.keras" not in err and "best.keras" not in err
    assert not (run / "last.keras").exists()
    monkeypatch.undo()
    resumed = cli(*command_in(err))  # the command the message gives, as given
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["changes"] == [{"key": "optim.lr", "from": 0.01, "to": 0.001, "from_epoch": 1}]
    assert [float(row["learning_rate"]) for row in history(run)] == pytest.approx([0.001, 0.001])


@pytest.mark.slow
def test_a_non_finite_loss_later_names_the_checkpoints_that_exist_and_resume_lowers_the_rate(cli, tmp_path,
                                                                                              monkeypatch):
    poison_at(monkeypatch, 1)
    run = tmp_path / "logs" / "r"
    result = cli("train", *sets(*TINY, "train.epochs=3", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=r"))
    assert result.exit_code == 3, result.output
    err = result.stderr
    assert "The 1 finished epoch(s) are saved" in err and "continue from epoch 2" in err
    assert "last.keras" in err and (run / "last.keras").is_file()
    monkeypatch.undo()
    resumed = cli(*command_in(err))
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    rates = [float(row["learning_rate"]) for row in history(run)]
    assert rates == pytest.approx([0.01, 0.001, 0.001])  # the change is in the history, from epoch 2
    from kerasclf.config import load_config

    assert load_config(run / "config.yaml").optim.lr == pytest.approx(0.001)  # the record says what now runs
    # a higher rate, or a rate change of a run that did not diverge, is still refused
    again = cli("train", "--resume", run, "--set", "optim.lr=0.1")
    assert_user_error(again, "optim.lr", "refused", "did not stop on one")


@pytest.mark.slow
def test_sigterm_at_the_end_of_a_saved_epoch_says_nothing_will_run_again(cli, tmp_path, monkeypatch):
    from kerasclf.runs.resume import ResumeCheckpoint

    original = ResumeCheckpoint.on_epoch_end

    def save_then_signal(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # handled: sets the stop request, StopOnSignal raises next

    monkeypatch.setattr(ResumeCheckpoint, "on_epoch_end", save_then_signal)
    run = tmp_path / "logs" / "r"
    result = cli("train", *sets(*TINY, "train.epochs=3", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=r"))
    assert result.exit_code == 143, result.output
    assert "after epoch 1 finished" in result.stderr and "will run again" not in result.stderr
    assert [row["epoch"] for row in history(run)] == ["1"]
    monkeypatch.undo()
    resumed = cli("train", "--resume", run)
    assert resumed.exit_code == 0
    assert [row["epoch"] for row in history(run)] == ["1", "2", "3"]  # epoch 1 did not run again


@pytest.mark.parametrize("content", [b"these are not weights\n", b""])
def test_a_file_that_is_not_weights_is_named_as_such(cli, tmp_path, content):
    bogus = tmp_path / "weights.txt"
    bogus.write_bytes(content)
    result = cli("train", "--dry-run", *sets("data.source=synthetic", f"model.weights={bogus}"))
    err = assert_user_error(result, "model.weights", str(bogus), "not a weights file")
    assert "not found" not in err.lower()


def test_a_keras_name_on_a_file_that_is_no_zip_is_refused(cli, tmp_path):
    bogus = tmp_path / "best.keras"
    bogus.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # HDF5 named .keras
    assert_user_error(cli("train", "--dry-run", *sets("data.source=synthetic", f"model.weights={bogus}")),
                      "not a weights file")


def test_the_embedding_report_counts_only_queries_with_a_class_mate(tmp_path):
    from kerasclf.evaluation.embeddings import write_embedding_report

    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 2])  # class 2 has one image: no right answer for it
    embeddings = rng.normal(size=(len(labels), 4)).astype("float32")
    metrics, lines = write_embedding_report(tmp_path / "emb", embeddings, labels, ["a", "b", "c"], split="test",
                                            tsne_points=10)
    text = "\n".join(lines)
    assert metrics["queries"] == 5
    assert "5 of the 6 test images are queries" in text and "each a query" not in text


def test_a_full_disk_is_said_before_data_is_read(cli, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    result = cli("train", *sets(*TINY, f"train.log_dir={tmp_path / 'logs'}"))
    assert_user_error(result, "train.log_dir", "full", "1 MiB free")
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


@pytest.mark.slow
def test_a_run_folder_that_cannot_be_started_is_not_left_with_only_a_lock(cli, tmp_path, monkeypatch):
    import errno

    from kerasclf.runs import keeper

    def full(cfg, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keeper, "dump_config", full)
    result = cli("train", *sets(*TINY, "train.epochs=1", f"train.log_dir={tmp_path / 'logs'}", "train.run_name=r"))
    assert_user_error(result, "could not be started", "No space left", "train.log_dir")
    assert not (tmp_path / "logs" / "r").exists()


def test_a_full_disk_message_names_the_folder_written_not_train_log_dir_only(tmp_path, monkeypatch):
    """`evaluate --out` on a full disk: the message names the --out folder and --out, and does not
    claim an earlier version is intact when there was none."""
    import errno

    from kerasclf.errors import StorageError
    from kerasclf.runs import atomic

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "_fsync_file", full)
    out = tmp_path / "report"
    out.mkdir()
    with pytest.raises(StorageError) as caught:
        atomic.write_text(out / "report.md", "# report\n")
    text = str(caught.value)
    assert str(out) in text and "--out" in text and "intact" not in text
    assert not (out / "report.md").exists()
