"""Issue #8, evaluation splits: other data is scored whole into its own folder; the run's
val/test are the recorded ones, or evaluation refuses/warns when it cannot know."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import class_image, write_image

pytestmark = pytest.mark.slow

TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


def train_run(cli, source, logs, name="run", *extra):
    result = cli("train", *sets(
        f"data.source={source}", "data.val_fraction=0.25", *TINY, "train.epochs=1", "train.verbose=0",
        f"train.log_dir={logs}", f"train.run_name={name}", *extra,
    ))
    assert result.exit_code == 0, (result.output, result.exception)
    return logs / name


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def make_pool_run(root):
    """A run trained on a 24-image pool (val and test carved), plus another 8-image folder."""
    from click.testing import CliRunner

    from kerasclf.cli import main

    def cli(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    for folder, count in (("pool", 12), ("other", 4)):
        for c in "ab":
            for i in range(count):
                write_image(root / folder / c / f"{c}{i:03d}.png", class_image(c, seed=i))
    run = train_run(cli, f"folder:{root / 'pool'}", root / "logs", "run", "data.test_fraction=0.25")
    return root / "pool", root / "other", run


@pytest.fixture
def pool_run(tmp_path):
    """A run of its own, for tests that change its folder or run directory."""
    return make_pool_run(tmp_path)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run for the tests that only read it."""
    return make_pool_run(tmp_path_factory.mktemp("shared"))


def test_other_data_is_scored_whole_into_its_own_folder(cli, shared_run):
    pool, other, run = shared_run
    own = (run / "eval" / "test" / "metrics.json").read_text()
    result = cli("evaluate", "--checkpoint", run / "best.keras", "--data", f"folder:{other}")
    assert result.exit_code == 0, (result.output, result.exception)
    out = run / "eval" / "folder-other-all"
    assert f"Report: {out / 'report.md'}" in result.stdout
    assert metrics(out)["size"] == 8 and metrics(out)["split"] == "all"  # every image, none carved away
    assert (run / "eval" / "test" / "metrics.json").read_text() == own  # the run's report untouched


def test_splits_json_partitions_the_folder(shared_run):
    pool, _, run = shared_run
    record = json.loads((run / "splits.json").read_text())
    files = {name: set(s["files"]) for name, s in record["splits"].items()}
    assert set(files) == {"train", "val", "test"}
    assert not (files["train"] & files["val"]) and not (files["train"] & files["test"]) and not (files["val"] & files["test"])
    everything = {str(p.relative_to(pool)) for p in pool.rglob("*.png")}
    assert files["train"] | files["val"] | files["test"] == everything
    assert {name: s["count"] for name, s in record["splits"].items()} == {"train": 13, "val": 5, "test": 6}


def test_lone_checkpoint_refuses_a_carved_split(cli, user_error, shared_run, tmp_path):
    # Issue #8: without config.yaml the val split was re-carved with other settings, overlapping
    # the training images, without a word.
    _, _, run = shared_run
    (tmp_path / "alone").mkdir()
    lone = shutil.copy(run / "best.keras", tmp_path / "alone" / "model.keras")
    for split in ("val", "test"):
        user_error(cli("evaluate", "--checkpoint", lone, "--split", split),
                   "no run directory beside it", f"no {split} split of its own", "--data")


def test_lone_checkpoint_may_use_a_test_folder_of_the_data_set(cli, tmp_path, make_image_folder):
    make_image_folder(tmp_path / "root" / "train", {"a": 8, "b": 8})
    make_image_folder(tmp_path / "root" / "test", {"a": 3, "b": 3})
    run = train_run(cli, f"folder:{tmp_path / 'root'}", tmp_path / "logs")
    (tmp_path / "alone").mkdir()
    lone = shutil.copy(run / "best.keras", tmp_path / "alone" / "model.keras")
    result = cli("evaluate", "--checkpoint", lone, "--split", "test")
    assert result.exit_code == 0, (result.output, result.exception)
    assert metrics(tmp_path / "alone" / "eval" / "test")["size"] == 6


def test_added_files_do_not_move_the_recorded_val_split(cli, pool_run):
    pool, _, run = pool_run
    first = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val")
    assert first.exit_code == 0, first.output
    before = metrics(run / "eval" / "val")
    for c in "ab":  # new images sorted first: the seeded carve of the folder would now differ
        for i in range(3):
            write_image(pool / c / f"0new{i}.png", class_image(c, seed=100 + i))
    with pytest.warns(UserWarning, match="changed since training .* evaluating the 5 val images recorded"):
        again = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val")
    assert again.exit_code == 0, again.output
    after = metrics(run / "eval" / "val")
    assert (after["size"], after["accuracy"], after["confusion"]) == (before["size"], before["accuracy"], before["confusion"])


def test_a_missing_recorded_file_is_refused_naming_it(cli, user_error, pool_run):
    pool, _, run = pool_run
    gone = json.loads((run / "splits.json").read_text())["splits"]["test"]["files"][0]
    (pool / gone).unlink()
    user_error(cli("evaluate", "--checkpoint", run / "best.keras", "--split", "test"), "1 of the 6 test images", gone)


def test_a_recorded_file_with_other_pixels_is_refused(cli, user_error, pool_run):
    pool, _, run = pool_run
    changed = json.loads((run / "splits.json").read_text())["splits"]["val"]["files"][0]
    write_image(pool / changed, class_image("c", seed=7))
    user_error(cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val"), "changed since training")


def test_run_without_splits_json_warns(cli, shared_run, tmp_path):
    run = Path(shutil.copytree(shared_run[2], tmp_path / "old-run"))
    (run / "splits.json").unlink()
    with pytest.warns(UserWarning, match="no splits.json .* may include training images"):
        result = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val")
    assert result.exit_code == 0, result.output


def test_split_all_on_the_runs_own_data_warns_about_training_images(cli, shared_run):
    _, _, run = shared_run
    with pytest.warns(UserWarning, match="includes its training images"):
        result = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "all")
    assert result.exit_code == 0, result.output
    assert metrics(run / "eval" / "all")["size"] == 24


def test_naming_the_training_folder_again_is_the_runs_own_data(cli, shared_run):
    pool, _, run = shared_run
    result = cli("evaluate", "--checkpoint", run / "best.keras", "--data", f"folder:{pool}/", "--split", "val")
    assert result.exit_code == 0, result.output
    assert metrics(run / "eval" / "val")["size"] == 5  # the recorded val split, not a fresh carve
    assert not (run / "eval" / "folder-pool-val").exists()


def test_out_folder_is_used_and_checked_before_loading_data(cli, user_error, shared_run, tmp_path):
    _, other, run = shared_run
    result = cli("evaluate", "--checkpoint", run / "best.keras", "--data", f"folder:{other}", "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert metrics(tmp_path / "rep")["size"] == 8
    (tmp_path / "a_file").write_text("x")
    user_error(cli("evaluate", "--checkpoint", run / "best.keras", "--out", tmp_path / "a_file" / "rep"),
               "--out", "is a file, not a folder")


@pytest.mark.backend_agnostic
def test_builtin_data_set_split_is_checked_by_its_pixels(cli, user_error, tmp_path):
    run = train_run(cli, "synthetic", tmp_path / "logs")
    result = cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val")
    assert result.exit_code == 0, result.output
    assert metrics(run / "eval" / "val")["size"] == 100
    record = json.loads((run / "splits.json").read_text())
    assert record["splits"]["val"]["files"] is None and record["splits"]["val"]["count"] == 100
    record["splits"]["val"]["sha256"] = "0" * 64  # as if the data set came out differently now
    (run / "splits.json").write_text(json.dumps(record))
    user_error(cli("evaluate", "--checkpoint", run / "best.keras", "--split", "val"),
               "not the one this run recorded", "--split all")
    assert cli("evaluate", "--checkpoint", run / "best.keras", "--split", "test").exit_code == 0  # test unchanged
