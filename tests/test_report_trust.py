"""Issue 23: the numbers a figure plots, what ranks runs, what a time covers, what the console shows.

Figures are checked on their data: every matplotlib Figure saved during a call is captured
(Figure.savefig is wrapped) and its Line2D data read back.
"""

import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.test_compare import fake_run, metrics, read_csv

pytestmark = pytest.mark.backend_agnostic


@pytest.fixture
def saved_figures(monkeypatch):
    """{file name: Figure} of every figure saved while the test runs."""
    saved = {}
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        saved[str(fname).rsplit("/", 1)[-1]] = self  # a temporary name holding the stem (runs/atomic.py)
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def figure_named(saved, stem):
    (fig,) = [f for name, f in saved.items() if stem + "-" in name or name.startswith(stem + ".")]
    return fig


def history_csv(path, epochs=(1, 2, 3), extra=None):
    """A history.csv as kerasclf writes it: epoch counted from 1."""
    columns = {"accuracy": [0.3, 0.5, 0.6], "loss": [2.0, 1.5, 1.2], "val_accuracy": [0.4, 0.6, 0.55],
               "val_loss": [1.9, 1.4, 1.5], "epoch_seconds": [6.2, 0.6, 1.3], "sys_cpu_percent": [90, 95, 97],
               "sys_memory_gb": [1.0, 1.1, 1.1], **(extra or {})}
    lines = [",".join(["epoch", *columns])]
    lines += [",".join(map(str, [e, *(v[i] for v in columns.values())])) for i, e in enumerate(epochs)]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- 1. the epoch axis is history.csv's own epoch numbers --------------------------------

def test_compare_curves_plot_history_epochs_not_plus_one(tmp_path, saved_figures):
    from kerasclf.studies.compare import compare

    for name, val in (("a", 0.6), ("b", 0.55)):
        run = fake_run(tmp_path / "s", name, [f"optim.lr={val}"], metrics("cnn", val, 0.5))
        history_csv(run / "history.csv")
    compare([tmp_path / "s"], hparams=False)
    for stem in ("compare_accuracy", "compare_loss"):
        (ax,) = figure_named(saved_figures, stem).axes
        xs = [list(line.get_xdata()) for line in ax.get_lines() if len(line.get_xdata()) > 1]
        assert xs and all(x == [1, 2, 3] for x in xs), (stem, xs)
        # each run's best epoch (metrics.json best_epoch: 2) starred on its validation curve
        stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert len(stars) == 2 and all(list(line.get_xdata()) == [2] for line in stars)


def test_resources_figure_plots_history_epochs(tmp_path, saved_figures):
    from kerasclf.evaluation.resource_figures import plot_resources

    plot_resources(history_csv(tmp_path / "history.csv"), tmp_path / "resources.png")
    fig = figure_named(saved_figures, "resources")
    for ax in fig.axes:
        for line in ax.get_lines():
            assert list(line.get_xdata()) == [1, 2, 3]


def test_history_epochs_of_a_plain_keras_csvlogger_file_start_at_one():
    from kerasclf.evaluation.figures import history_epochs

    assert list(history_epochs({"epoch": np.array([0.0, 1.0]), "loss": np.array([1.0, 0.5])})) == [1, 2]
    assert list(history_epochs({"epoch": np.array([1.0, 2.0]), "loss": np.array([1.0, 0.5])})) == [1, 2]
    assert list(history_epochs({"loss": np.array([1.0, 0.5, 0.2])})) == [1, 2, 3]


# --- 2. samples drawn across classes ------------------------------------------------------

def test_sample_grid_draws_every_class_from_a_class_sorted_split(tmp_path, saved_figures):
    from kerasclf.evaluation.figures import plot_prediction_grid
    from kerasclf.evaluation.metrics import sample_across_classes

    y = np.repeat(np.arange(4), 50)  # a folder split: sorted by class
    chosen = sample_across_classes(y, 36, seed=0)
    assert len(chosen) == 36 == len(set(chosen.tolist()))
    counts = np.bincount(y[chosen], minlength=4)
    assert counts.tolist() == [9, 9, 9, 9]
    assert (sample_across_classes(y, 36, seed=0) == chosen).all()  # seeded
    assert set(y[sample_across_classes(y, 3, seed=1)].tolist()) <= {0, 1, 2, 3}
    assert len(set(y[sample_across_classes(y, 4, seed=1)].tolist())) == 4  # as many cells as classes: all
    y100 = np.repeat(np.arange(100), 3)
    assert len(set(y100[sample_across_classes(y100, 36)].tolist())) == 36  # fewer cells: all distinct classes

    images = np.zeros((len(y), 8, 8, 3), np.uint8)
    names = ["airplane", "bird", "cat", "dog"]
    plot_prediction_grid(images, y, y, names, tmp_path / "samples.png")
    fig = figure_named(saved_figures, "samples")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert sorted({t.split(" (")[0] for t in titles}) == names
    assert "drawn across the classes" in fig._suptitle.get_text()


# --- 3. ranking by validation, never by test; different data sets apart ------------------

def test_compare_ranks_by_validation_not_test(tmp_path):
    from kerasclf.studies.compare import compare

    study = tmp_path / "study"
    # "overfit_val" has the better test accuracy, "good_val" the better validation accuracy
    fake_run(study, "good_val", ["optim.lr=0.1"], metrics("cnn", 0.80, 0.70, monitor="val_accuracy"))
    fake_run(study, "better_test", ["optim.lr=0.01"], metrics("cnn", 0.75, 0.90, monitor="val_accuracy"))
    compare([study], hparams=False, curves=False)
    rows = [r for r in read_csv(study / "comparison.csv") if not r["run"].startswith("random")]
    assert [r["run"] for r in rows] == ["good_val", "better_test"]
    assert [r["best"] for r in rows] == ["1", "0"]
    assert rows[0]["ranked_by"] == "best_val_accuracy"
    md = (study / "comparison.md").read_text()
    assert "ranked by best validation accuracy" in md and "**good_val** (best)" in md
    assert "never ranks" in md


def test_compare_ranks_by_the_monitored_val_loss(tmp_path):
    from kerasclf.studies.compare import compare

    study = tmp_path / "study"
    # monitored val_loss: the best epoch is the lowest val_loss; ranked on it, lower first
    a = fake_run(study, "a", ["optim.lr=0.1"], metrics("cnn", 0.9, 0.5, monitor="val_loss", best_epoch=2))
    b = fake_run(study, "b", ["optim.lr=0.01"], metrics("cnn", 0.8, 0.6, monitor="val_loss", best_epoch=2))
    history_csv(a / "history.csv", extra={"val_loss": [1.0, 0.9, 0.95]})
    history_csv(b / "history.csv", extra={"val_loss": [1.0, 0.3, 0.35]})
    compare([study], hparams=False, curves=False)
    rows = [r for r in read_csv(study / "comparison.csv") if r["run"] in "ab"]
    assert [r["run"] for r in rows] == ["b", "a"] and rows[0]["best"] == "1"
    assert rows[0]["ranked_by"] == "val_loss" and float(rows[0]["val_score"]) == pytest.approx(0.3)
    assert "ranked by val_loss" in (study / "comparison.md").read_text()


def test_compare_without_validation_scores_ranks_nothing_and_says_so(tmp_path):
    from kerasclf.studies.compare import compare

    study = tmp_path / "study"
    fake_run(study, "a", ["optim.lr=0.1"], metrics("cnn", None, 0.5, monitor="accuracy"))
    fake_run(study, "b", ["optim.lr=0.01"], metrics("cnn", None, 0.9, monitor="accuracy"))
    compare([study], hparams=False, curves=False)
    rows = read_csv(study / "comparison.csv")
    assert all(r["best"] == "0" for r in rows) and all(r["rank"] == "" for r in rows)
    md = (study / "comparison.md").read_text()
    assert "not ranked: no run has a validation score" in md and "(best)" not in md


def test_compare_separates_runs_on_different_data(tmp_path):
    from kerasclf.studies.compare import compare

    fake_run(tmp_path, "c10", ["data.source=cifar10"], metrics("cnn", 0.5, 0.5))
    fake_run(tmp_path, "c10b", ["data.source=cifar10", "optim.lr=0.1"], metrics("cnn", 0.6, 0.4))
    fake_run(tmp_path, "few", ["data.source=cifar10", "data.limit_per_class=10"], metrics("cnn", 0.9, 0.3))
    with pytest.warns(UserWarning, match="different data"):
        compare([tmp_path], out_dir=tmp_path / "out", hparams=False, curves=False)
    rows = [r for r in read_csv(tmp_path / "out" / "comparison.csv") if not r["run"].startswith("random")]
    best = {r["run"]: r["best"] for r in rows}
    assert best == {"c10b": "1", "c10": "0", "few": "1"}  # one best per data set
    assert len({r["data"] for r in rows}) == 2
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert md.count("## Data: ") == 2 and "data.limit_per_class=10" in md


# --- 4. first epoch (compiling) and steady epoch time, apart --------------------------------

def test_epoch_times_split_compilation_from_steady_state():
    from kerasclf.training.run import epoch_times

    assert epoch_times([6.2, 0.6, 1.3, 0.7]) == (6.2, 0.7)
    assert epoch_times([6.2, 0.6, 1.3]) == (6.2, 0.95)
    assert epoch_times([3.0]) == (3.0, None)
    assert epoch_times([]) == (None, None)


def test_compare_and_report_show_first_and_steady_epoch_seconds(tmp_path):
    from kerasclf.evaluation.sections import ReportContext, run_section
    from kerasclf.studies.compare import compare

    fake_run(tmp_path / "s", "a", [], metrics("cnn", 0.5, 0.5, wall_seconds=10.8, first_epoch_seconds=6.2,
                                             steady_seconds_per_epoch=0.65))
    compare([tmp_path / "s"], hparams=False, curves=False)
    md = (tmp_path / "s" / "comparison.md").read_text()
    assert "| train wall s | first epoch s | steady s / epoch |" in md and "| 10.8 | 6.2 | 0.7 |" in md
    assert "includes compiling" in md
    ctx = ReportContext(out=tmp_path, title="", split="test", summary={}, metrics={},
                        run={"run_name": "lr-0.1", "wall_seconds": 10.8, "first_epoch_seconds": 6.2,
                             "hyperparameters": {"optim.lr": 0.1}})
    text = "\n".join(run_section(ctx))
    assert "- run: lr-0.1" in text and "10.8 s" in text and "10.8000" not in text and "6.2 s" in text
    assert "| `optim.lr` | 0.1 |" in text


# --- 5. the console: metrics only, 120 columns, no retracing noise, a sweep that talks -----

LOGS = {"loss": 0.0212, "accuracy": 0.9985, "val_loss": 0.0348, "val_accuracy": 0.9861, "learning_rate": 1.234e-05,
        "epoch_seconds": 8.7, "sys_cpu_percent": 100.0, "sys_memory_gb": 1.02}


def test_progress_bar_shows_metrics_only_within_120_columns(capsys):
    from kerasclf.training.progress import MetricsProgbar, fit_verbosity

    verbose, (bar,) = fit_verbosity(1, io_stream())
    assert verbose == 0 and isinstance(bar, MetricsProgbar)
    bar.set_params({"verbose": 0, "epochs": 15, "steps": 21})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for step in range(21):
        bar.on_train_batch_end(step, {"loss": 0.5, "accuracy": 0.9})
    bar.on_epoch_end(0, dict(LOGS))
    text = capsys.readouterr().out
    import re

    visible = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes take no column
    # a terminal redraws the bar after carriage returns / backspaces: each redraw is one line
    lines = [part for line in visible.splitlines() for part in re.split("[\r\x08]+", line) if part.strip()]
    assert "epoch_seconds" not in text and "sys_" not in text
    assert "val_acc" in text and "learning_rate" not in text
    # 7 columns of room for a slower timer than this test's ("12s 345ms/step" against "0s 7us/step")
    assert max(len(line.rstrip()) for line in lines) <= 120 - 7, lines


def io_stream():
    import io

    return io.StringIO()


def test_epoch_line_has_no_internal_columns():
    from kerasclf.training.progress import EpochLine

    stream = io_stream()
    line = EpochLine(stream)
    line.set_params({"epochs": 15, "steps": 21, "verbose": 0})
    line.on_epoch_end(0, dict(LOGS))
    text = stream.getvalue()
    assert text.startswith("Epoch 1/15: loss") and "sys_" not in text and "epoch_seconds" not in text


def test_tensorflow_retracing_warning_is_filtered(caplog):
    import logging

    from kerasclf.console import quiet_tensorflow_retracing

    quiet_tensorflow_retracing()
    quiet_tensorflow_retracing()  # once only
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <function f at 0x1> triggered tf.function retracing. "
                       "Tracing is expensive ..." + "x" * 600)
        logger.warning("a real warning")
    assert [r.getMessage() for r in caplog.records] == ["a real warning"]
    assert sum(type(f).__name__ == "_DropRetracing" for f in logger.filters) == 1


def test_sweep_echoes_each_epoch_of_each_run_while_it_trains(tmp_path, monkeypatch):
    import sys

    from kerasclf.studies import sweep

    plan = sweep.plan_sweep(sets=["data.source=synthetic", "train.epochs=2"], grid=["optim.lr=0.1,0.01"],
                            name="s", study=None)
    plan.study_dir = tmp_path / "s"
    plan.study_dir.mkdir()
    script = ("import time\nfor e in (1, 2):\n    print(f'Epoch {e}/2: loss 0.5, accuracy 0.9', flush=True)\n"
              "    print('noise', flush=True)\n    time.sleep(1.5)\n")
    monkeypatch.setattr(sweep, "train_command", lambda plan, point: [sys.executable, "-c", script])
    echoed = []
    runner = sweep._Runner(plan, 1, echoed.append)
    runner.poll_seconds = 0.2
    runner.run(plan.points[:1])
    name = plan.points[0].name
    assert echoed[:2] == [f"  {name}: Epoch 1/2: loss 0.5, accuracy 0.9", f"  {name}: Epoch 2/2: loss 0.5, accuracy 0.9"]
    assert echoed[2].startswith(f"[1/1] {name}: failed, process")  # no metrics.json: the fake run failed


# --- 6. TensorBoard: one epoch numbering, per-epoch first, eval as scalars and PR curves ----

def tensorboard_tags(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}, acc


@pytest.mark.slow
def test_tensorboard_of_a_run_reads_at_a_glance(cli, tmp_path):
    pytest.importorskip("tensorflow")
    import csv

    result = cli("train", "--set", "data.source=synthetic", "--set", "train.epochs=2", "--set", "model.name=cnn",
                 "--set", "model.filters=[8]", "--set", "model.dense=[16]", "--set", "data.batch_size=4",
                 "--set", f"train.log_dir={tmp_path}", "--set", "train.run_name=r")
    assert result.exit_code == 0, (result.output, result.exception)
    run = tmp_path / "r"
    with open(run / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    train, _ = tensorboard_tags(run / "tensorboard" / "train")
    validation, _ = tensorboard_tags(run / "tensorboard" / "validation")
    assert train["epoch_loss"] == epochs == [1, 2] and validation["epoch_accuracy"] == epochs
    assert "epoch_epoch_seconds" not in train and train["system/seconds_per_epoch"] == epochs
    assert not any(t.startswith(("batch_", "evaluation_", "epoch_sys")) for t in [*train, *validation])
    assert any(t.startswith("per_step/") for t in train)
    # per-epoch tags sort before the per-step ones (TensorBoard lists tag groups alphabetically)
    assert sorted(train)[0].startswith("epoch_")
    assert validation["epoch_confusion_matrix"] == epochs

    metrics = json.loads((run / "metrics.json").read_text())
    report = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    evaluation, acc = tensorboard_tags(run / "tensorboard" / "eval")
    from tensorboard.util.tensor_util import make_ndarray

    (event,) = acc.Tensors("test/accuracy")
    assert event.step == metrics["best_epoch"]
    assert float(make_ndarray(event.tensor_proto)) == pytest.approx(report["accuracy"])
    assert {f"test/pr_curve/{c}/pr_curves" for c in report["class_names"]} <= set(evaluation)
    assert evaluation["test/confusion_matrix"] == [metrics["best_epoch"]]


def test_tensorboard_confusion_matrix_grows_with_the_class_count():
    from kerasclf.evaluation.figures import confusion_matrix_image

    small = confusion_matrix_image(np.eye(3, dtype=int) * 5, ["a", "b", "c"])
    big = confusion_matrix_image(np.eye(100, dtype=int), [f"class{i}" for i in range(100)])
    assert small.shape[0] <= 500  # a card shows it near full size: its text stays readable
    assert big.shape[0] >= 2.5 * small.shape[0]  # 100 classes get room for their labels


# --- 7. report.md and its figures --------------------------------------------------------

def test_report_names_files_plots_aux_loss_sorted_per_class_and_links_gradient_flow(tmp_path, saved_figures):
    from kerasclf.evaluation.report import write_report

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    prob = rng.dirichlet(np.ones(3), size=len(y))
    prob[:10, 0] += 2  # class a mostly right, the others at chance
    prob /= prob.sum(1, keepdims=True)
    paths = [f"/data/{'abc'[c]}/img_{i:03d}.jpg" for i, c in enumerate(y)]
    history = history_csv(tmp_path / "history.csv", extra={"aux_loss": [0.9, 0.5, 0.4]})
    flow = tmp_path / "run" / "gradient_flow"
    flow.mkdir(parents=True)
    for e in (0, 1):
        (flow / f"epoch_{e:03d}.png").write_bytes(b"png")
    out = tmp_path / "run" / "eval" / "test"
    write_report(out, y, prob, ["a", "b", "c"], images=np.zeros((len(y), 8, 8, 3), np.uint8), history_csv=history,
                 run={"best_epoch": 2, "gradient_flow_figures": [str(p) for p in sorted(flow.glob("*.png"))]},
                 paths=paths)

    import csv

    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == paths
    assert float(rows[0]["loss"]) == pytest.approx(-np.log(prob[0, 0]), rel=1e-4)
    gallery = figure_named(saved_figures, "misclassified")
    titles = [ax.get_title() for ax in gallery.axes if ax.get_title()]
    assert titles and all(t.rsplit("\n", 1)[-1].startswith("img_") for t in titles)

    (ax,) = figure_named(saved_figures, "curves_aux_loss").axes
    (line,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3]
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == [0.9, 0.5, 0.4]
    best = [ln for ln in ax.get_lines() if "best epoch" in str(ln.get_label())]
    assert best and list(best[0].get_xdata()) == [2, 2]  # the best epoch marked on the curve

    (ax,) = figure_named(saved_figures, "per_class_accuracy").axes
    widths = [bar.get_width() for bar in ax.patches]
    per_class = [np.mean(prob[y == c].argmax(1) == c) for c in range(3)]
    assert widths == sorted(per_class)
    assert ax.get_yticklabels()[0].get_text() == "abc"[int(np.argmin(per_class))]

    md = (out / "report.md").read_text()
    assert "## Gradient flow" in md and "(../../gradient_flow/epoch_001.png)" in md
    assert "auxiliary (triplet/center) loss" in md and "per_class_accuracy.png" in md


def test_confusion_colour_bar_is_no_taller_than_the_matrix_for_100_classes(tmp_path, saved_figures):
    from kerasclf.evaluation.figures import plot_confusion_matrix

    plot_confusion_matrix(np.eye(100, dtype=int) * 3, [f"c{i}" for i in range(100)], tmp_path / "cm.png")
    fig = figure_named(saved_figures, "cm")
    matrix = fig.axes[0]
    bars = [a for a in [*fig.axes[1:], *matrix.child_axes]]  # sklearn's: a figure axes; an inset: a child
    (bar,) = bars
    fig.canvas.draw()
    m, b = matrix.get_window_extent(), bar.get_window_extent()
    assert b.height <= m.height + 1 and b.y0 >= m.y0 - 1
    assert matrix.yaxis.label.get_window_extent().x0 >= 0  # "True label" inside the figure
    assert bar.get_tightbbox().x1 <= fig.bbox.width  # the bar's numbers too


def test_tsne_markers_are_visible_and_data_report_bar_labels_readable(tmp_path, saved_figures):
    from kerasclf.evaluation.data_report import plot_class_counts
    from kerasclf.evaluation.embeddings import plot_tsne

    points = np.random.default_rng(0).normal(size=(2000, 2))
    plot_tsne(points, np.arange(2000) % 10, [str(i) for i in range(10)], tmp_path / "t.png", "t")
    (ax,) = figure_named(saved_figures, "t").axes[:1]
    assert min(c.get_sizes()[0] for c in ax.collections) >= 14  # was 6

    plot_class_counts({"train": [500] * 10, "test": [100] * 10}, [f"class{i}" for i in range(10)],
                      tmp_path / "counts.png")
    (ax,) = figure_named(saved_figures, "counts").axes
    labels = [t for t in ax.texts if t.get_text().replace(",", "").isdigit()]
    assert labels and min(t.get_fontsize() for t in labels) >= 8


# --- what users expect: most confused, top losses, calibration, small splits ---------------

def test_most_confused_pairs_and_calibration_against_hand_counts():
    from kerasclf.evaluation.metrics import calibration, most_confused_pairs

    cm = np.array([[8, 2, 0], [5, 5, 0], [0, 1, 9]])
    assert most_confused_pairs(cm, ["a", "b", "c"]) == [("b", "a", 5, 0.5), ("a", "b", 2, 0.2), ("c", "b", 1, 0.1)]
    # 4 images: confidence 0.95 right and wrong, 0.55 right twice
    y = np.array([0, 1, 0, 1])
    prob = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    calib = calibration(y, prob, bins=10)
    # bin (0.9, 1.0]: conf 0.95, acc 0.5 (2 images); bin (0.5, 0.6]: conf 0.55, acc 1.0 (2 images)
    assert calib["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert [b["count"] for b in calib["bins"]] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]


def test_report_has_most_confused_top_losses_reliability_and_warns_on_a_small_split(tmp_path, saved_figures):
    from kerasclf.evaluation.report import write_report

    y = np.array([0, 0, 1, 1, 2, 2] * 5)
    prob = np.full((30, 3), 0.1)
    prob[np.arange(30), y] = 0.8
    prob[0] = [0.05, 0.9, 0.05]  # the worst loss: an "a" taken for "b" at 0.9
    paths = [f"img_{i}.png" for i in range(30)]
    with pytest.warns(UserWarning, match="30 images: one image moves its accuracy by 3.3 points"):
        metrics = write_report(tmp_path, y, prob, ["a", "b", "c"], paths=paths)
    md = (tmp_path / "report.md").read_text()
    assert "## Most confused classes" in md and "| a | b | 1 | 10.0% |" in md
    assert "| 1 | `img_0.png` | a | b | 0.900 | 0.050 | 2.996 |" in md
    assert metrics["accuracy_step_points"] == pytest.approx(100 / 30)
    # bins are (low, high]: 29 right at 0.8 in (0.7, 0.8], one wrong at 0.9 in (0.8, 0.9]
    assert "reliability.png" in md and metrics["ece"] == pytest.approx(29 / 30 * 0.2 + 1 / 30 * 0.9)
    (ax,) = figure_named(saved_figures, "reliability").axes
    assert [(round(p.get_x(), 2), p.get_height()) for p in ax.patches] == [(0.7, 1.0), (0.8, 0.0)]


# --- lr-find ---------------------------------------------------------------------------------

def test_lr_find_suggests_the_steepest_descent_before_the_minimum():
    from kerasclf.training.lr_find import RangeTest, smooth, suggest

    lrs = np.logspace(-6, 1, 141)  # 20 per decade
    x = np.log10(lrs)
    # a loss that is flat, falls fastest at 1e-3 (tanh centre), bottoms out near 1e-1 and then diverges
    loss = 2.0 - np.tanh((x + 3) * 2) + np.where(x > -1, 30 * (x + 1) ** 2, 0)
    s = suggest(lrs, loss)
    assert s["steepest"] == pytest.approx(1e-3, rel=0.13)
    assert 10 ** -1.5 <= s["minimum"] <= 10 ** -0.8 and s["min_over_10"] == pytest.approx(s["minimum"] / 10)
    assert smooth([1.0, 1.0, 1.0])[0] == pytest.approx(1.0)  # bias-corrected: no ramp from 0
    test = RangeTest(1e-7, 10, 100)
    assert test.lr_at(0) == pytest.approx(1e-7) and test.lr_at(99) == pytest.approx(10)


@pytest.mark.slow
def test_lr_find_command_writes_plot_csv_and_suggestion(cli, tmp_path):
    result = cli("lr-find", "--set", "data.source=synthetic", "--set", "model.name=cnn", "--set", "model.filters=[8]",
                 "--set", "model.dense=[16]", "--set", "data.batch_size=8", "--set", f"train.log_dir={tmp_path}",
                 "--steps", "30", "--start", "1e-5", "--end", "1")
    assert result.exit_code == 0, (result.output, result.exception)
    (out,) = tmp_path.glob("lr-find-*")
    found = json.loads((out / "lr_find.json").read_text())
    rows = (out / "lr_find.csv").read_text().splitlines()
    assert 10 < len(rows) <= 31 and (out / "lr_find.png").stat().st_size > 10_000
    assert "Suggested optim.lr" in result.output or "Too few batches" in result.output
    lrs = [float(r.split(",")[1]) for r in rows[1:]]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-5)
    if found["suggestion"]["steepest"] is not None:
        assert 1e-5 <= found["suggestion"]["steepest"] <= 1


# --- seeds: mean ± std over runs that differ only by seed ----------------------------------

def test_compare_aggregates_runs_that_differ_only_by_seed(tmp_path):
    import statistics

    from kerasclf.studies.compare import compare

    study = tmp_path / "s"
    vals = {("0.1", 0): 0.60, ("0.1", 1): 0.64, ("0.1", 2): 0.62, ("0.01", 0): 0.70, ("0.01", 1): 0.72}
    for (lr, seed), val in vals.items():
        fake_run(study, f"lr{lr}-s{seed}", [f"optim.lr={lr}", f"seed={seed}"], metrics("cnn", val, val - 0.05))
    fake_run(study, "alone", ["optim.lr=0.5", "seed=0"], metrics("cnn", 0.3, 0.3))
    compare([study], hparams=False, curves=False)
    rows = read_csv(study / "comparison_seeds.csv")
    assert [r["setting"] for r in rows] == ["optim.lr=0.01", "optim.lr=0.1"]  # ranked by mean validation
    assert float(rows[1]["val_mean"]) == pytest.approx(0.62)
    assert float(rows[1]["val_std"]) == pytest.approx(statistics.stdev([0.60, 0.64, 0.62]))
    assert float(rows[0]["test_mean"]) == pytest.approx(0.66) and rows[0]["runs"] == "2"
    md = (study / "comparison.md").read_text()
    assert "## Over seeds" in md and "| optim.lr=0.1 | 3 | 0, 1, 2 | 62.00% ± 2.00 |" in md


def test_sweep_seeds_option_repeats_every_point(cli, tmp_path):
    result = cli("sweep", "--set", "data.source=synthetic", "--set", f"train.log_dir={tmp_path}", "--grid",
                 "optim.lr=0.1,0.01", "--seeds", "0,1,2", "--name", "s", "--dry-run")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "6 runs" in result.output and result.output.count("seed=") == 6


# --- augmented training images as the model sees them --------------------------------------

def test_augmented_batch_shows_the_models_own_augmentation(tmp_path, saved_figures):
    from kerasclf.config import load_config
    from kerasclf.training.assemble import prepare
    from kerasclf.training.augmented_view import augmented_images, write_augmented_batch

    base = ["data.source=synthetic", "model.name=cnn", "model.filters=[4]", "model.dense=[8]", f"train.log_dir={tmp_path}"]
    plain = prepare(load_config(None, base))
    assert write_augmented_batch(plain.model, plain.data.train, plain.data.info.class_names, tmp_path / "a.png") is None
    prepared = prepare(load_config(None, [*base, "augment.flip=true", "augment.flip_mode=alternate", "augment.crop_padding=3"]))
    split, names = prepared.data.train, prepared.data.info.class_names
    x = np.asarray(split.x[:4])
    out, layers = augmented_images(prepared.model, x)
    assert layers == ["aug_flip", "aug_crop"] and out.shape == x.shape
    preprocessed = np.asarray(prepared.model.get_layer("preprocess")(x))
    assert not np.allclose(out, preprocessed)  # the layers ran in training mode
    write_augmented_batch(prepared.model, split, names, tmp_path / "augmented_batch.png")
    fig = figure_named(saved_figures, "augmented_batch")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 16 and sum(t.endswith("augmented") for t in titles) == 8
    assert {t.split("\n")[0] for t in titles} == set(names)  # drawn across the classes


# --- Grad-CAM ------------------------------------------------------------------------------

def test_grad_cam_of_a_linear_gap_model_is_its_feature_map():
    import keras

    from kerasclf.evaluation.gradcam import grad_cam

    inputs = keras.Input((6, 6, 1))
    fmap = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(fmap)
    dense = keras.layers.Dense(2, use_bias=False, name="head")
    outputs = keras.layers.Softmax()(dense(pooled))
    model = keras.Model(inputs, outputs)
    dense.set_weights([np.array([[1.0, -1.0]])])
    image = np.zeros((1, 6, 6, 1), np.float32)
    image[0, 1, 1, 0], image[0, 4, 2, 0] = 2.0, 1.0
    # the score of class 0 rises with every position alike (GAP, positive weight): the map is
    # the feature map itself, scaled to a maximum of 1; class 1 falls everywhere: ReLU leaves 0
    (cam,) = grad_cam(model, image, [0], layer_name="conv")
    np.testing.assert_allclose(cam, image[0, ..., 0] / 2.0, atol=1e-5)
    (cam1,) = grad_cam(model, image, [1], layer_name="conv")
    assert np.all(cam1 == 0)


GRAD_CAM_SCRIPT = """
import sys, numpy as np, keras
from kerasclf.evaluation.gradcam import grad_cam
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], grad_cam(model, np.load(sys.argv[2]), [0, 1, 2, 1]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "resnet9", "resnet18"])  # resnet18: a nested backbone model
def test_grad_cam_maps_agree_between_tensorflow_and_jax(tmp_path, name):
    """The two backends take the gradient differently (GradientTape inside the whole model;
    jax.grad of the model after the feature map): the same registered model and images must
    give the same maps under both."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    from kerasclf.config import load_config
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model

    info = DatasetInfo("synthetic", ["a", "b", "c"], (64, 64), 3, [120.0] * 3, [60.0] * 3)  # resnet18: a 2x2 map
    model = build_model(load_config(None, [f"model.name={name}", "model.weights=none"]), info)
    model.save(tmp_path / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype("uint8")
    np.save(tmp_path / "images.npy", images)
    maps = {}
    for backend in ("tensorflow", "jax"):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        out = tmp_path / f"{backend}.npy"
        done = subprocess.run([sys.executable, "-c", GRAD_CAM_SCRIPT, str(tmp_path / "model.keras"),
                               str(tmp_path / "images.npy"), str(out)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        maps[backend] = np.load(out)
    assert maps["tensorflow"].shape == (4, 64, 64) and maps["tensorflow"].max() > 0
    np.testing.assert_allclose(maps["jax"], maps["tensorflow"], atol=2e-3)


def test_a_diverged_run_puts_the_compared_loss_on_a_log_axis(tmp_path, saved_figures):
    """Seen on the real Dogs vs Cats betas sweep: Adam (0.9, 0.0) reached a loss of 1.9e11, and
    on a linear axis the three healthy runs lay flat on zero."""
    from kerasclf.studies.compare import compare

    for name, beta_2, losses in (("healthy", 0.999, [0.8, 0.6, 0.5]), ("diverged", 0.0, [0.84, 8.9e6, 1.9e11])):
        run = fake_run(tmp_path / "s", name, [f"optim.beta_2={beta_2}"], metrics("cnn", 0.6, 0.5))
        history_csv(run / "history.csv", extra={"loss": losses, "val_loss": [0.7, 5.2e11, 2.6e10]})
    compare([tmp_path / "s"], hparams=False)
    (ax,) = figure_named(saved_figures, "compare_loss").axes
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    healthy = [line for line in ax.get_lines() if list(line.get_ydata()) == [0.8, 0.6, 0.5]]
    assert healthy and ax.get_ylim()[0] < 0.5  # the healthy curve is inside the axis, not squashed
    (ax,) = figure_named(saved_figures, "compare_accuracy").axes
    assert ax.get_yscale() == "linear"


def test_loss_curves_stay_linear_for_an_ordinary_run_and_go_log_when_it_blows_up(tmp_path, saved_figures):
    from kerasclf.evaluation.figures import plot_history

    plot_history(history_csv(tmp_path / "ordinary.csv"), tmp_path / "ordinary")
    (ax,) = figure_named(saved_figures, "curves_loss").axes
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "loss"
    saved_figures.clear()
    blown = history_csv(tmp_path / "blown.csv", extra={"loss": [0.84, 8.9e6, 1.9e11], "val_loss": [0.7, 5e11, 3e10]})
    plot_history(blown, tmp_path / "blown")
    (ax,) = figure_named(saved_figures, "curves_loss").axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "loss (log scale)"
    (ax,) = figure_named(saved_figures, "curves_accuracy").axes
    assert ax.get_yscale() == "linear"
