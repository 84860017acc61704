"""kerasclf compare: the table over run directories, the random row, curves, HParams, bad paths."""

import csv
import importlib.util
import json

import pytest

from kerasclf.plotting import history_epochs, read_history
from kerasclf.runs.artefacts import history_text

TINY = ["data.source=synthetic", "train.epochs=2", "train.verbose=0", "train.evaluate_after=false"]


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fake_run(root, name, overrides, metrics=None, history=None, error=None):
    """A run directory as `kerasclf train` leaves it (config.yaml, metrics.json, history.csv)."""
    from kerasclf.config import dump_config, load_config

    run = root / name
    run.mkdir(parents=True)
    dump_config(load_config(None, [*overrides, f"train.log_dir={root}", f"train.run_name={name}"]), run / "config.yaml")
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps({"interrupted": False, **metrics}))
    if history is not None:
        lines = ["epoch,accuracy,loss,val_accuracy,val_loss"] + [",".join(map(str, row)) for row in history]
        (run / "history.csv").write_text("\n".join(lines) + "\n")
    if error is not None:
        (run / "error.txt").write_text(error + "\n")
    return run


def metrics(model, val, test, classes=10, **extra):
    return {"model": model, "num_classes": classes, "epochs_run": 3, "best_epoch": 2, "best_val_accuracy": val,
            "test_accuracy": test, "weight_layers": 4, "trainable_weight_layers": 4, "params_trainable": 1234,
            "wall_seconds": 30.0, "seconds_per_epoch": 10.0, **extra}


def test_table_columns_are_the_differing_keys_sorted_with_random_row_and_best(tmp_path):
    from kerasclf.studies.compare import compare

    study = tmp_path / "study"
    fake_run(study, "a", ["optim.name=sgd", "optim.lr=0.1"], metrics("cnn", 0.61, 0.60),
             history=[(0, 0.3, 2.0, 0.4, 1.9), (1, 0.5, 1.5, 0.61, 1.4)])
    fake_run(study, "b", ["optim.name=adam", "optim.lr=0.1"], metrics("cnn", 0.82, 0.80),
             history=[(0, 0.5, 1.2, 0.7, 1.0), (1, 0.8, 0.6, 0.82, 0.5)])
    fake_run(study, "c", ["optim.name=sgd", "optim.lr=0.001"], metrics("cnn", 0.05, 0.07))
    fake_run(study, "d", ["optim.name=adam", "optim.lr=0.001"], error="Unknown model 'x'")
    paths = compare([study], hparams=False)
    assert paths["markdown"] == str(study / "comparison.md") and paths["skipped"] == []

    rows = read_csv(study / "comparison.csv")
    header = list(rows[0])
    # optim.lr and optim.name differ; seed, data.*, train.log_dir/run_name do not count
    assert header[header.index("run") + 1: header.index("model")] == ["optim.lr", "optim.name"]
    assert [r["run"] for r in rows] == ["b", "a", "random classifier (1/10)", "c", "d"]
    assert [r["best"] for r in rows] == ["1", "0", "0", "0", "0"]
    assert [r["rank"] for r in rows] == ["1", "2", "", "3", ""]
    assert float(rows[2]["test_accuracy"]) == pytest.approx(0.1) and float(rows[2]["best_val_accuracy"]) == pytest.approx(0.1)
    assert rows[4]["state"] == "failed" and rows[4]["error"] == "Unknown model 'x'"
    assert (rows[0]["optim.name"], rows[0]["optim.lr"]) == ("adam", "0.1")

    md = (study / "comparison.md").read_text()
    assert "| run | optim.lr | optim.name | model | epochs | best val acc (epoch) | test acc |" in md
    assert "| **b** (best) | 0.1 | adam | cnn | 3 | 82.00% (2) | 80.00% | 4 / 4 | 1,234 | 30.0 | — | — |" in md
    assert "| *random classifier (1/10)* |" in md and "10.00%" in md
    assert "d (failed: Unknown model 'x')" in md
    # curves from the two runs with a history
    assert sorted(p.rsplit("/", 1)[-1] for p in paths["figures"]) == ["compare_accuracy.png", "compare_loss.png"]


def test_sorting_by_validation_accuracy_and_one_random_row_per_class_count(tmp_path):
    from kerasclf.studies.compare import compare

    fake_run(tmp_path, "ten", ["model.name=cnn"], metrics("cnn", 0.45, None, classes=10))
    fake_run(tmp_path, "two", ["model.name=mlp"], metrics("mlp", 0.7, 0.69, classes=2))
    compare([tmp_path / "ten", tmp_path / "two"], out_dir=tmp_path / "out", hparams=False, curves=False)
    rows = read_csv(tmp_path / "out" / "comparison.csv")
    assert [r["run"] for r in rows] == ["two", "random classifier (1/2)", "ten", "random classifier (1/10)"]
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "ranked by best validation accuracy" in md


def test_globs_study_dirs_and_paths_that_are_not_runs(cli, user_error, tmp_path):
    logs = tmp_path / "logs"
    fake_run(logs, "cifar10-cnn-1", ["model.name=cnn"], metrics("cnn", 0.5, 0.5))
    fake_run(logs, "cifar10-mlp-1", ["model.name=mlp"], metrics("mlp", 0.4, 0.4))
    fake_run(logs / "study", "r1", ["seed=1"], metrics("cnn", 0.3, 0.3))
    (logs / "notes").mkdir()
    (logs / "notes" / "todo.txt").write_text("x")
    (logs / "cifar10-readme.md").write_text("x")  # a file matched by the glob: not a run, not worth a warning

    result = cli("compare", str(logs / "cifar10-*"), str(logs / "study"), str(logs / "notes"), "--out", tmp_path / "o",
                 "--no-hparams")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Warning: Not a run or study directory" in result.stderr and str(logs / "notes") in result.stderr
    assert "readme" not in result.stderr
    runs = [r["run"] for r in read_csv(tmp_path / "o" / "comparison.csv") if not r["run"].startswith("random")]
    assert sorted(runs) == ["cifar10-cnn-1", "cifar10-mlp-1", "r1"]

    user_error(cli("compare", str(logs / "nothing-*")), "matches no file or directory")
    user_error(cli("compare", str(logs / "notes")), "No run directories", "metrics.json")


def test_same_run_names_in_two_studies_get_their_study_as_prefix(tmp_path):
    from kerasclf.studies.compare import compare

    fake_run(tmp_path / "s1", "adam", ["seed=1"], metrics("cnn", 0.5, 0.5))
    fake_run(tmp_path / "s2", "adam", ["seed=2"], metrics("cnn", 0.6, 0.6))
    compare([tmp_path / "s1", tmp_path / "s2"], hparams=False, curves=False)
    rows = read_csv(tmp_path / "comparison.csv")  # common parent of the runs' studies
    assert [r["run"] for r in rows][:2] == ["s2/adam", "s1/adam"]
    assert [r["seed"] for r in rows][:2] == ["2", "1"]


@pytest.mark.skipif(not importlib.util.find_spec("tensorboard"), reason="HParams summaries need TensorBoard")
def test_hparams_summary_is_what_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from kerasclf.studies.compare import compare

    fake_run(tmp_path, "sgd", ["optim.name=sgd", "data.batch_size=16"], metrics("cnn", 0.6, 0.55))
    fake_run(tmp_path, "adam", ["optim.name=adam", "data.batch_size=64"], metrics("cnn", 0.8, 0.75))
    out = compare([tmp_path], curves=False)["hparams"]

    def plugin_content(path):
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        (content,) = acc.PluginTagToContent("hparams").values()
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        return data, acc

    experiment, _ = plugin_content(out)
    assert sorted(h.name for h in experiment.experiment.hparam_infos) == ["data.batch_size", "model", "optim.name"]
    assert {m.name.tag for m in experiment.experiment.metric_infos} >= {"hparams/best_val_accuracy", "hparams/test_accuracy"}
    session, acc = plugin_content(f"{out}/adam")
    values = session.session_start_info.hparams
    assert values["optim.name"].string_value == "adam" and values["data.batch_size"].number_value == 64
    from tensorboard.util.tensor_util import make_ndarray

    (event,) = acc.Tensors("hparams/test_accuracy")
    assert float(make_ndarray(event.tensor_proto)) == pytest.approx(0.75)
    assert event.step == 3  # epochs run
    compare([tmp_path], curves=False)  # again: replaced, not a second set of sessions
    assert len(list((tmp_path / "hparams").glob("events.*"))) == 1


@pytest.mark.slow
def test_compare_real_runs_of_different_models(cli, tmp_path):
    classes = "data.classes=[class0,class1,class2]"
    for name, model in (("mlp", ["model.name=mlp", "model.units=[32]"]),
                        ("cnn", ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"])):
        result = cli("train", *sets([*TINY, classes, *model, f"train.log_dir={tmp_path}", f"train.run_name={name}"]))
        assert result.exit_code == 0, (result.output, result.exception)
    result = cli("compare", tmp_path / "mlp", tmp_path / "cnn", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, (result.output, result.exception)

    rows = {r["run"]: r for r in read_csv(tmp_path / "cmp" / "comparison.csv")}
    assert float(rows["random classifier (1/3)"]["test_accuracy"]) == pytest.approx(1 / 3)
    header = list(next(iter(rows.values())))
    assert {"model.units", "model.filters", "model.dense"} <= set(header[header.index("run") + 1: header.index("model")])
    for name in ("mlp", "cnn"):
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        row = rows[name]
        assert row["model"] == name and int(row["epochs"]) == m["epochs_run"] == 2
        assert float(row["best_val_accuracy"]) == pytest.approx(m["best_val_accuracy"])
        assert int(row["best_epoch"]) == m["best_epoch"]
        assert float(row["test_accuracy"]) == pytest.approx(m["test_accuracy"])
        assert int(row["params_trainable"]) == m["params_trainable"] and int(row["weight_layers"]) == m["weight_layers"]
        assert float(row["wall_seconds"]) == pytest.approx(m["wall_seconds"])
    assert rows["mlp"]["model.units"] == "[32]" and rows["cnn"]["model.units"] == ""
    assert "Table:" in result.stdout and (tmp_path / "cmp" / "compare_accuracy.png").stat().st_size > 10_000


def test_overlaid_curves_number_epochs_as_history_csv_does(tmp_path):
    """history.csv counts epochs from 1 (like the console and best_epoch): the figure's x values
    must be those numbers, not shifted by one more."""
    path = tmp_path / "history.csv"
    path.write_text(history_text([{"epoch": e, "val_accuracy": 0.5} for e in range(3)]))
    assert list(history_epochs(read_history(path))) == [1, 2, 3]
