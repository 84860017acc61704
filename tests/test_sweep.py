"""kerasclf sweep: planning a grid, running it as child processes, resuming, recording failures."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
        "train.epochs=1", "train.evaluate_after=false"]


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- planning (no training) ---------------------------------------------------------------

def test_grid_values_split_on_top_level_commas_only():
    from kerasclf.studies.sweep import parse_grid

    grid = parse_grid(["model.filters=[8,16],[32]", "optim.name=sgd, adam", 'data.classes="a,b",first:3'])
    assert grid == {
        "model.filters": ["[8,16]", "[32]"], "optim.name": ["sgd", "adam"], "data.classes": ['"a,b"', "first:3"],
    }


@pytest.mark.parametrize("text, fragment", [
    ("optim.name", "KEY=VALUE1,VALUE2"),
    ("=sgd,adam", "KEY=VALUE1,VALUE2"),
    ("optim.name=sgd,,adam", "empty value"),
])
def test_bad_grid_text_is_a_user_error(cli, user_error, text, fragment):
    user_error(cli("sweep", "--grid", text), fragment)


def test_grid_key_twice_is_a_user_error(cli, user_error):
    user_error(cli("sweep", "--grid", "optim.name=sgd", "--grid", "optim.name=adam"), "given twice")


def test_plan_is_the_product_with_names_from_the_varying_values(tmp_path):
    from kerasclf.config import load_config
    from kerasclf.studies.sweep import plan_sweep, planned_config

    plan = plan_sweep(None, ["optim.name=sgd,adam", "data.batch_size=16,64"], [*TINY, f"train.log_dir={tmp_path}"])
    assert plan.study_dir == tmp_path / "sweep-optim-batch_size"
    assert [p.name for p in plan.points] == [
        "optim-sgd_batch_size-16", "optim-sgd_batch_size-64", "optim-adam_batch_size-16", "optim-adam_batch_size-64",
    ]
    config = planned_config(plan, plan.points[3])
    expected = load_config(None, [*TINY, "optim.name=adam", "data.batch_size=64", "train.verbose=2"])
    assert config["optim"] == {**vars(expected.optim)} and config["data"]["batch_size"] == 64
    assert config["train"]["log_dir"] == str(plan.study_dir) and config["train"]["run_name"] == "optim-adam_batch_size-64"
    assert not plan.study_dir.exists()  # planning writes nothing


def test_labels_fall_back_to_full_keys_when_they_clash(tmp_path):
    from kerasclf.studies.sweep import plan_sweep

    plan = plan_sweep(None, ["optim.name=sgd,adam", "model.name=cnn"], [f"train.log_dir={tmp_path}"])
    assert plan.points[1].name == "optim-adam_model-cnn"  # "name-adam_name-cnn" would not say which


@pytest.mark.parametrize("grid, extra, fragments", [
    (["optim.nme=sgd,adam"], [], ["run 'nme-sgd'", "Unknown config key 'nme'", 'Did you mean "name"']),
    (["data.batch_size=16,zero"], [], ["run 'batch_size-zero'", "data.batch_size must be int"]),
    (["data.batch_size=16,0"], [], ["run 'batch_size-0'", "data.batch_size must be >= 1"]),
    (["train.run_name=a,b"], [], ["train.run_name cannot vary"]),
    (["optim.name=sgd,adam"], ["optim.name=adam"], ["optim.name is both set"]),
])
def test_a_bad_grid_point_fails_before_any_run(cli, user_error, tmp_path, grid, extra, fragments):
    args = [a for g in grid for a in ("--grid", g)]
    user_error(cli("sweep", *args, *sets([*TINY, *extra, f"train.log_dir={tmp_path}"])), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_study_file_named_runs_times_grid(tmp_path):
    from kerasclf.errors import ConfigError
    from kerasclf.studies.sweep import plan_sweep

    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(sort_keys=False, data={
        "name": "optimizers",
        "base": {"data": {"source": "synthetic"}, "train": {"log_dir": str(tmp_path / "logs")}},
        "set": ["train.epochs=2"],
        "runs": {"sgd bs1": {"optim.name": "sgd", "data.batch_size": 1},
                 "adam": {"optim.name": "adam", "optim.betas_note": None}},
        "grid": {"seed": [0, 1]},
    }))
    with pytest.raises(ConfigError, match="betas_note"):  # a wrong key inside a named run is caught up front
        plan_sweep(study=study)
    spec = yaml.safe_load(study.read_text())
    del spec["runs"]["adam"]["optim.betas_note"]
    study.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = plan_sweep(study=study, sets=["optim.lr=0.01"])
    assert plan.study_dir == tmp_path / "logs" / "optimizers"
    assert [(p.name, p.texts) for p in plan.points] == [
        ("sgd-bs1_seed-0", ["optim.name=sgd", "data.batch_size=1", "seed=0"]),
        ("sgd-bs1_seed-1", ["optim.name=sgd", "data.batch_size=1", "seed=1"]),
        ("adam_seed-0", ["optim.name=adam", "seed=0"]),
        ("adam_seed-1", ["optim.name=adam", "seed=1"]),
    ]
    assert plan.base["train"]["epochs"] == 2 and plan.base["optim"]["lr"] == 0.01


def test_study_file_unknown_key(cli, user_error, tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("name: x\ngrdi: {optim.name: [sgd, adam]}\n")
    user_error(cli("sweep", "--study", study), "grdi", 'Did you mean "grid"')


def test_shipped_study_files_plan(tmp_path):
    """Every configs/studies/*.yaml plans (valid keys and values) once pointed at an existing data set."""
    from kerasclf.config import from_dict
    from kerasclf.models import builder_kwargs
    from kerasclf.studies.sweep import plan_sweep, planned_config

    files = sorted((REPO_ROOT / "configs" / "studies").glob("*.yaml"))
    assert files
    for path in files:
        plan = plan_sweep(study=path, sets=["data.source=synthetic", f"train.log_dir={tmp_path}"])
        assert len(plan.points) >= 2, path
        for point in plan.points:
            builder_kwargs(from_dict(planned_config(plan, point)).model)  # model keys fit the model


def test_error_summary_picks_the_line_that_says_what_went_wrong():
    from kerasclf.studies.sweep import error_summary

    log = "Epoch 1/2\nsome output\nError: Unknown model 'nosuch'. Choose one of cnn, mlp.\n"
    assert error_summary(log, 2) == "Unknown model 'nosuch'. Choose one of cnn, mlp."
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: shapes do not match\n'
    assert error_summary(traceback, 1) == "ValueError: shapes do not match"
    assert error_summary("Epoch 1/2\n", -9) == "killed by signal 9"


def _fake_finished_run(run_dir, config, **metrics):
    from kerasclf.config import dump_config

    run_dir.mkdir(parents=True)
    dump_config(config, run_dir / "config.yaml")
    (run_dir / "metrics.json").write_text(json.dumps({"interrupted": False, **metrics}))


def test_a_finished_run_of_another_config_is_not_silently_reused(cli, user_error, tmp_path):
    from kerasclf.config import from_dict
    from kerasclf.studies.sweep import plan_sweep, planned_config

    args = (["optim.name=sgd,adam"], [*TINY, f"train.log_dir={tmp_path}"])
    plan = plan_sweep(None, *args)
    config = planned_config(plan, plan.points[0])
    config["optim"]["lr"] = 0.5
    _fake_finished_run(plan.study_dir / plan.points[0].name, from_dict(config))
    err = user_error(cli("sweep", "--grid", args[0][0], *sets(args[1])), "finished run of another configuration",
                     "optim.lr", "--name")
    assert "0.5" in err


def test_run_states(tmp_path):
    from kerasclf.studies.runs import run_state

    def run(name, **files):
        d = tmp_path / name
        d.mkdir()
        for f, text in files.items():
            (d / f.replace("_", ".")).write_text(text)
        return run_state(d)

    assert run("done", metrics_json='{"interrupted": false, "best_val_accuracy": 0.5}') == "finished"
    assert run("cut", metrics_json='{"interrupted": fa') == "unfinished"  # killed while writing
    assert run("ctrl_c", metrics_json='{"interrupted": true}') == "unfinished"
    assert run("started", config_yaml="seed: 0\n") == "unfinished"
    assert run("failed", error_txt="Unknown model\n") == "failed"
    assert run_state(tmp_path / "never") == "missing"


def test_dry_run_lists_runs_and_states(cli, tmp_path):
    from kerasclf.config import from_dict
    from kerasclf.studies.sweep import plan_sweep, planned_config

    args = (["data.batch_size=16,32,64"], [*TINY, f"train.log_dir={tmp_path}"])
    plan = plan_sweep(None, *args)
    _fake_finished_run(plan.study_dir / "batch_size-32", from_dict(planned_config(plan, plan.points[1])))
    result = cli("sweep", "--grid", args[0][0], *sets(args[1]), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()[1:]
    assert [line.split()[:2] for line in lines] == [
        ["batch_size-16", "missing"], ["batch_size-32", "finished"], ["batch_size-64", "missing"],
    ]
    assert "data.batch_size=64" in lines[2]


# --- running (child processes) --------------------------------------------------------------

@pytest.mark.slow
def test_2x2_sweep_makes_four_runs_and_one_table_with_both_keys(cli, tmp_path):
    result = cli("sweep", "--grid", "optim.name=sgd,adam", "--grid", "data.batch_size=16,64", "--parallel", "2",
                 "--name", "grid", *sets([*TINY, f"train.log_dir={tmp_path}"]))
    assert result.exit_code == 0, (result.output, result.exception)
    study = tmp_path / "grid"
    runs = sorted(p.name for p in study.iterdir() if p.is_dir() and p.name != "hparams")
    assert runs == ["optim-adam_batch_size-16", "optim-adam_batch_size-64", "optim-sgd_batch_size-16",
                    "optim-sgd_batch_size-64"]
    assert "4 runs, 0 finished earlier, 4 to run, 2 at a time" in result.stdout
    for run in runs:
        config = yaml.safe_load((study / run / "config.yaml").read_text())
        assert run == f"optim-{config['optim']['name']}_batch_size-{config['data']['batch_size']}"
        assert (study / run / "train.log").is_file() and not (study / run / "error.txt").exists()

    rows = read_csv(study / "comparison.csv")
    header = list(rows[0])
    assert header[header.index("run") + 1: header.index("model")] == ["data.batch_size", "optim.name"]
    by_run = {r["run"]: r for r in rows}
    assert set(by_run) == {*runs, "random classifier (1/4)"}
    for run in runs:
        metrics = json.loads((study / run / "metrics.json").read_text())
        assert float(by_run[run]["test_accuracy"]) == pytest.approx(metrics["test_accuracy"])
        assert by_run[run]["optim.name"] in run and by_run[run]["data.batch_size"] in run
    accuracies = [float(r["test_accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert [r["best"] for r in rows].count("1") == 1 and rows[0]["best"] == ("1" if rows[0]["run"] in runs else "0")
    md = (study / "comparison.md").read_text()
    assert "| run | data.batch_size | optim.name | model |" in md
    assert (study / "compare_accuracy.png").is_file() and (study / "compare_loss.png").is_file()
    assert yaml.safe_load((study / "study.yaml").read_text())["grid"] == {
        "optim.name": ["sgd", "adam"], "data.batch_size": ["16", "64"],
    }


def _sweep_cmd(log_dir, name, grid):
    return [sys.executable, "-m", "kerasclf.cli", "sweep", "--name", name, *[a for g in grid for a in ("--grid", g)],
            *sets([*TINY, f"train.log_dir={log_dir}"])]


@pytest.mark.slow
def test_killed_sweep_rerun_finishes_only_the_missing_runs(cli, tmp_path):
    grid = ["seed=1,2,3"]
    study = tmp_path / "resume"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(_sweep_cmd(tmp_path, "resume", grid), cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (study / "seed-1" / "metrics.json").is_file():
            assert proc.poll() is None and time.time() < deadline, "the sweep ended before its first run finished"
            time.sleep(0.2)
        time.sleep(0.5)  # metrics.json may be mid-write; a partial one counts as unfinished anyway
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its running child, like a lost terminal
        proc.wait()
    from kerasclf.studies.runs import run_state

    before = {n: run_state(study / n) for n in ("seed-1", "seed-2", "seed-3")}
    finished = [n for n, s in before.items() if s == "finished"]
    assert "seed-1" in finished and len(finished) < 3, before
    stamps = {n: (study / n / "metrics.json").stat().st_mtime_ns for n in finished}

    result = cli("sweep", "--name", "resume", *[a for g in grid for a in ("--grid", g)],
                 *sets([*TINY, f"train.log_dir={tmp_path}"]))
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"3 runs, {len(finished)} finished earlier, {3 - len(finished)} to run" in result.stdout
    assert {n: run_state(study / n) for n in before} == {n: "finished" for n in before}
    assert {n: (study / n / "metrics.json").stat().st_mtime_ns for n in finished} == stamps  # not redone
    assert sorted(p.name for p in study.iterdir() if p.is_dir() and p.name.startswith("seed")) == list(before)
    assert len(read_csv(study / "comparison.csv")) == 4  # three runs + the random row


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_others_go_on(cli, tmp_path):
    # a folder that does not exist passes the config checks and fails when its run loads data
    missing = tmp_path / "no-such-folder"
    tiny = [o for o in TINY if not o.startswith("data.source=")]
    args = ["--grid", f"data.source=synthetic,folder:{missing}", "--name", "fail",
            *sets([*tiny, f"train.log_dir={tmp_path}"])]
    result = cli("sweep", *args)
    assert result.exit_code == 1
    study = tmp_path / "fail"
    runs = [p for p in study.iterdir() if (p / "metrics.json").is_file() or (p / "error.txt").is_file()]
    assert len(runs) == 2
    good, bad = sorted(runs, key=lambda p: (p / "error.txt").exists())
    assert (good / "metrics.json").is_file()
    error = (bad / "error.txt").read_text()
    assert error.splitlines()[0].startswith("Data folder") and "no-such-folder" in error.splitlines()[0]
    assert "Error: Data folder" in (bad / "train.log").read_text()
    assert f"1 of 2 runs did not finish: {bad.name}" in result.stderr
    rows = {r["run"]: r for r in read_csv(study / "comparison.csv")}
    assert rows[bad.name]["state"] == "failed" and "no-such-folder" in rows[bad.name]["error"]
    assert rows[good.name]["state"] == "finished" and rows[good.name]["best"] == "1"
    assert f"{bad.name} (failed: Data folder" in (study / "comparison.md").read_text()

    again = cli("sweep", *args)  # a failed run is not finished: re-done (and fails again)
    assert "2 runs, 1 finished earlier, 1 to run" in again.stdout
    assert again.exit_code == 1
