"""Issue 17, part 1: `train --resume` on a folder that changed keeps the run's recorded splits.

Added files are left out with a warning; a recorded file missing or changed, or a changed class
set, is refused naming it; splits.json is never rewritten, and the schedule's step count stays.
"""

import csv
import json
import shutil

import pytest
from conftest import assert_user_error, class_image, write_image

TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]", "train.verbose=0",
        "train.evaluate_after=false", "data.val_fraction=0.25", "data.batch_size=8", "optim.lr=0.01"]


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def first_session(cli, make_image_folder, tmp_path):
    root = make_image_folder(tmp_path / "imgs", {"a": 12, "b": 12}, size=(12, 12))
    result = cli("train", *sets(f"data.source=folder:{root}", *TINY, "train.epochs=1",
                                f"train.log_dir={tmp_path / 'logs'}", "train.run_name=r"))
    assert result.exit_code == 0, (result.output, result.exception)
    return root, tmp_path / "logs" / "r"


def recorded(run):
    return json.loads((run / "splits.json").read_text())


@pytest.mark.slow
def test_resume_after_files_were_added_trains_on_the_recorded_splits(cli, make_image_folder, tmp_path):
    root, run = first_session(cli, make_image_folder, tmp_path)
    before = (run / "splits.json").read_bytes()
    for i in range(12):  # 12 more per class: a fresh carve would move val images into train
        for name in ("a", "b"):
            write_image(root / name / f"new{i:03d}.png", class_image(name, (12, 12), seed=100 + i))
    with pytest.warns(UserWarning, match=r"24 image file\(s\) were added .* leaves them out"):
        result = cli("train", "--resume", run, *sets("train.epochs=2"))
    assert result.exit_code == 0, (result.output, result.exception)
    assert (run / "splits.json").read_bytes() == before  # the record is not replaced
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["train_size"], metrics["val_size"]) == (18, 6)  # the recorded counts, not 36 / 12
    with open(run / "history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.slow
def test_resume_refuses_when_a_recorded_file_is_gone(cli, make_image_folder, tmp_path):
    root, run = first_session(cli, make_image_folder, tmp_path)
    gone = recorded(run)["splits"]["val"]["files"][0]
    (root / gone).unlink()
    result = cli("train", "--resume", run, *sets("train.epochs=2"))
    assert_user_error(result, gone, "val", "put the recorded files back")
    assert recorded(run)["splits"]["val"]["files"][0] == gone


@pytest.mark.slow
def test_resume_refuses_a_recorded_file_with_other_pixels(cli, make_image_folder, tmp_path):
    root, run = first_session(cli, make_image_folder, tmp_path)
    changed = recorded(run)["splits"]["train"]["files"][0]
    write_image(root / changed, class_image("b", (12, 12), seed=999))
    result = cli("train", "--resume", run, *sets("train.epochs=2"))
    assert_user_error(result, "train split", "changed since training")


@pytest.mark.slow
def test_resume_refuses_a_changed_class_set(cli, make_image_folder, tmp_path):
    root, run = first_session(cli, make_image_folder, tmp_path)
    shutil.copytree(root / "a", root / "c")
    result = cli("train", "--resume", run, *sets("train.epochs=2"))
    assert_user_error(result, "classes", "recorded a, b", "now has a, b, c")
