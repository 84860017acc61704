"""predict, features, svm and the HTML report on a small trained run (issue 20)."""

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import class_image, write_image

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_JPEG = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg" / "train.tar.xz"
CHROMIUM = Path("/usr/bin/chromium")
TINY = ["model.name=cnn", "model.filters=[8]", "model.dense=[16]"]
CLASSES = ("a", "b", "c", "d")


def sets(*overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def invoke(*args):
    from click.testing import CliRunner

    from kerasclf.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def train_run(root, logs, name="run", epochs=3, extra=()):
    result = invoke("train", *sets(
        f"data.source=folder:{root}", "data.val_fraction=0.2", "data.test_fraction=0.2", "data.batch_size=16",
        *TINY, f"train.epochs={epochs}", "train.verbose=0", f"train.log_dir={logs}", f"train.run_name={name}", *extra,
    ))
    assert result.exit_code == 0, (result.output, result.exception)
    return Path(logs) / name


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A tiny CNN trained on four colour classes (12x12 PNGs), evaluated on its test split."""
    base = tmp_path_factory.mktemp("colours")
    root = base / "data"
    for name in CLASSES:
        for i in range(20):
            write_image(root / name / f"{name}{i:03d}.png", class_image(name, (12, 12), seed=i))
    return root, train_run(root, base / "logs")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def files_in_dataset_order(root):
    """Files as a folder data set orders them: class folders sorted, then file names sorted."""
    return [str(p) for d in sorted(Path(root).iterdir()) if d.is_dir() for p in sorted(d.rglob("*.*"))]


def assert_predict_agrees_with_evaluate(root, checkpoint, tmp_path):
    evaluated = invoke("evaluate", "--checkpoint", checkpoint, "--data", f"folder:{root}", "--split", "all",
                       "--out", tmp_path / "eval")
    assert evaluated.exit_code == 0, (evaluated.output, evaluated.exception)
    rows = read_csv(tmp_path / "eval" / "predictions.csv")
    files = files_in_dataset_order(root)
    assert [r["true"] for r in rows] == [Path(f).parent.name for f in files]  # the order is the folder's
    predicted = invoke("predict", "--checkpoint", checkpoint, root, "--top-k", "2", "--out", tmp_path / "p.csv")
    assert predicted.exit_code == 0, (predicted.output, predicted.exception)
    mine = {r["path"]: r for r in read_csv(tmp_path / "p.csv")}
    assert sorted(mine) == sorted(files)
    for path, row in zip(files, rows):
        assert mine[path]["class_1"] == row["pred"], path
        assert float(mine[path]["prob_1"]) == pytest.approx(float(row["confidence"]), abs=1e-5), path
    return len(files)


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_predict_agrees_with_evaluate_on_a_folder(colour_run, tmp_path):
    root, run = colour_run
    assert assert_predict_agrees_with_evaluate(root, run / "best.keras", tmp_path) == 80


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason=f"{CIFAR10_JPEG} is not here")
def test_predict_agrees_with_evaluate_on_cifar_jpegs(tmp_path):
    from test_train_evaluate import _extract_subset

    root = _extract_subset(CIFAR10_JPEG, tmp_path / "cifar", ["airplane", "cat", "frog"], per_class=40)
    run = train_run(root, tmp_path / "logs", epochs=1, extra=["train.evaluate_after=false"])
    assert assert_predict_agrees_with_evaluate(root, run / "best.keras", tmp_path) == 120


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_predict_any_mode_and_size_and_unreadable_files(colour_run, tmp_path):
    from PIL import Image

    _, run = colour_run
    folder = tmp_path / "in"
    grey = np.repeat(class_image("a", (12, 12))[..., :1].mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    write_image(folder / "grey_rgb.png", grey)
    Image.fromarray(grey[..., 0], "L").save(folder / "grey_l.png")  # the same pixels as one channel
    rgb = class_image("b", (12, 12))
    write_image(folder / "rgb.png", rgb)
    Image.fromarray(np.dstack([rgb, np.full((12, 12), 255, np.uint8)]), "RGBA").save(folder / "rgba.png")
    (folder / "nested").mkdir()
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(folder / "nested" / "palette.gif")
    write_image(folder / "odd.jpg", class_image("c", (37, 23)))
    Image.fromarray((grey[..., 0].astype(np.uint16) * 257), "I;16").save(folder / "sixteen.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    result = invoke("predict", "--checkpoint", run / "best.keras", folder, tmp_path / "missing.png",
                    "--top-k", "3", "--out", tmp_path / "p.csv", "--grid", tmp_path / "grid.png")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "broken.jpg" in result.stderr and "missing.png" in result.stderr and "2 file(s) could not be read" in result.stderr
    rows = {Path(r["path"]).name: r for r in read_csv(tmp_path / "p.csv")}
    assert set(rows) == {"grey_rgb.png", "grey_l.png", "rgb.png", "rgba.png", "palette.gif", "odd.jpg",
                         "sixteen.png", "broken.jpg", "missing.png"}
    assert rows["broken.jpg"]["error"] and rows["missing.png"]["error"] == "no such file or folder"
    for name in ("grey_l.png", "sixteen.png"):  # one channel, 8 or 16 bits: the same as its RGB twin
        assert rows[name]["class_1"] == rows["grey_rgb.png"]["class_1"]
        assert float(rows[name]["prob_1"]) == pytest.approx(float(rows["grey_rgb.png"]["prob_1"]), abs=2e-3)
    assert rows["rgba.png"]["class_1"] == rows["rgb.png"]["class_1"]
    assert float(rows["rgba.png"]["prob_1"]) == pytest.approx(float(rows["rgb.png"]["prob_1"]), abs=1e-6)
    for name in ("palette.gif", "odd.jpg"):
        probs = [float(rows[name][f"prob_{k}"]) for k in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert {rows[name][f"class_{k}"] for k in (1, 2, 3)} <= set(CLASSES)
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_without_images_is_one_clear_error(colour_run, tmp_path):
    from conftest import assert_user_error

    _, run = colour_run
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("predict", "--checkpoint", run / "best.keras", tmp_path / "empty"), "No image files found")


def embeddings_of(checkpoint, x):
    """The oracle: Keras's own sub-model up to the layer named `embedding`."""
    import keras

    from kerasclf.checkpoint import register_serializables

    register_serializables()
    model = keras.saving.load_model(str(checkpoint), safe_mode=True)
    sub = keras.Model(model.inputs, model.get_layer("embedding").output)
    return sub.predict(x, verbose=0)


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_features_of_a_checkpoint_use_the_runs_own_splits(colour_run, tmp_path):
    from kerasclf.data.images import decode_files

    _, run = colour_run
    out = tmp_path / "f.npz"
    result = invoke("features", "--weights", run / "best.keras", "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    recorded = json.loads((run / "splits.json").read_text())["splits"]
    with np.load(out) as npz:
        assert list(npz["class_names"]) == list(CLASSES)
        for split in ("train", "val", "test"):
            assert len(npz[f"{split}_labels"]) == recorded[split]["count"]
            assert npz[f"{split}_features"].shape == (recorded[split]["count"], 16)
        paths = list(npz["test_paths"])
        assert [str(Path(p).relative_to(Path(paths[0]).parents[1])) for p in paths] == recorded["test"]["files"]
        images, _ = decode_files(paths, (12, 12))
        np.testing.assert_allclose(npz["test_features"], embeddings_of(run / "best.keras", images), rtol=1e-4, atol=1e-5)
        assert [Path(p).parent.name for p in paths] == [CLASSES[i] for i in npz["test_labels"]]
        meta = json.loads(str(npz["meta"]))
    assert meta["feature_size"] == 16 and meta["counts"]["test"] == recorded["test"]["count"]


@pytest.mark.slow
def test_features_from_a_registered_backbone(colour_run, tmp_path):
    root, _ = colour_run
    out = tmp_path / "mlp.npz"
    result = invoke("features", "--backbone", "mlp", "--weights", "none", "--data", f"folder:{root}",
                    "--set", "data.test_fraction=0.25", "--set", "model.units=[32, 24]", "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    with np.load(out) as npz:
        assert npz["train_features"].shape[1] == 24
        assert len(npz["train_labels"]) + len(npz["val_labels"]) + len(npz["test_labels"]) == 80


def test_features_needs_a_backbone_or_a_checkpoint(tmp_path):
    from conftest import assert_user_error

    assert_user_error(invoke("features", "--data", "digits", "--out", tmp_path / "f.npz"), "--backbone")


def blobs(n_per_class, classes, dim=8, seed=0, spread=1.0):
    centres = np.random.default_rng(99).normal(0, 3, (classes, dim))  # the same classes in every split
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return centres[y] + rng.normal(0, spread, (len(y), dim)), y


def write_features(path, splits, class_names):
    from kerasclf.features.extract import save_npz

    arrays = {"class_names": np.asarray(class_names), "meta": np.asarray(json.dumps({"backbone": "blobs"}))}
    for name, (x, y) in splits.items():
        arrays[f"{name}_features"], arrays[f"{name}_labels"] = x.astype(np.float32), y
    return save_npz(path, arrays)


@pytest.mark.backend_agnostic
def test_svm_chooses_C_on_validation_and_scores_like_sklearn(tmp_path):
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    from kerasclf.features.svm import C_GRID, run_svm

    train, val, test = blobs(30, 3, seed=1, spread=2.5), blobs(15, 3, seed=2, spread=2.5), blobs(20, 3, seed=3, spread=2.5)
    path = write_features(tmp_path / "f.npz", {"train": train, "val": val, "test": test}, ["x", "y", "z"])
    results = run_svm(path, tmp_path / "svm", echo=lambda *_: None)
    for kernel, base in (("linear", lambda C: LinearSVC(C=C, dual="auto", max_iter=2000, random_state=0)),
                         ("rbf", lambda C: SVC(C=C, gamma="scale", random_state=0))):
        fit = {C: make_pipeline(StandardScaler(), OneVsRestClassifier(base(C))).fit(*train) for C in C_GRID[kernel]}
        val_acc = {C: (m.predict(val[0]) == val[1]).mean() for C, m in fit.items()}
        best = max(C_GRID[kernel], key=lambda C: (val_acc[C], -C))  # ties: the smaller C
        got = results["kernels"][kernel]
        assert got["C"] == best
        assert [s["score"] for s in got["C_scores"]] == pytest.approx([val_acc[C] for C in C_GRID[kernel]])
        assert got["accuracy"] == pytest.approx((fit[best].predict(test[0]) == test[1]).mean())
        folder = tmp_path / "svm" / kernel
        for name in ("report.md", "classification_report.txt", "confusion_matrix.png", "roc.png", "per_class_accuracy.csv"):
            assert (folder / name).is_file(), name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["C"] == best and metrics["macro_auc"] is not None
    assert "| linear |" in (tmp_path / "svm" / "svm.md").read_text()


@pytest.mark.backend_agnostic
def test_svm_cross_validates_without_validation_split_and_handles_two_classes(tmp_path):
    from kerasclf.features.svm import run_svm

    train, test = blobs(20, 2, seed=4), blobs(10, 2, seed=5)
    path = write_features(tmp_path / "f.npz", {"train": train, "test": test}, ["cat", "dog"])
    results = run_svm(path, tmp_path / "svm", kernels=("linear",), folds=3, echo=lambda *_: None)
    got = results["kernels"]["linear"]
    assert got["C_chosen_by"].startswith("3-fold cross-validation") and got["accuracy"] > 0.9


def test_svm_refuses_features_without_held_out_images(tmp_path):
    from kerasclf.errors import DataError
    from kerasclf.features.svm import run_svm

    path = write_features(tmp_path / "f.npz", {"train": blobs(5, 2)}, ["a", "b"])
    with pytest.raises(DataError, match="held-out"):
        run_svm(path, tmp_path / "svm")


# --- the HTML report ------------------------------------------------------------------------

def images_of(html):
    return re.findall(r'<img src="([^"]+)"', html)


@pytest.mark.slow
def test_report_is_one_self_contained_page(colour_run, tmp_path):
    _, run = colour_run
    result = invoke("report", run, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, (result.output, result.exception)
    html = (tmp_path / "r.html").read_text()
    sources = images_of(html)
    assert len(sources) >= 7  # curves (loss, accuracy, lr, resources) + confusion x2 + ROC + galleries
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:|//|/)', html) and "<script" not in html
    for text in ("Summary", "Config", "Training curves", "Evaluation: eval/test", "Per class", "Environment",
                 "Confusion matrix (counts)", "ROC curves", "Misclassified"):
        assert text in html, text
    assert (run / "report.html").is_file()  # evaluate (train's evaluate_after) wrote the run's page


def test_report_of_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path):
    from conftest import assert_user_error

    assert_user_error(invoke("report", tmp_path), "not a kerasclf run directory")


CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target && e.target.src)), true);
console.error = (...a) => window.__errors.push(a.join(' '));
window.addEventListener('load', () => {
  const widths = Array.from(document.images, i => i.complete ? i.naturalWidth : 0);
  const pre = document.createElement('pre');
  pre.id = 'kerasclf-check';
  pre.textContent = JSON.stringify({widths: widths, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args, timeout=120):
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed")
def test_report_opens_in_headless_chromium_with_every_image_loaded(colour_run, tmp_path):
    _, run = colour_run
    page = tmp_path / "report.html"
    shutil.copy(run / "report.html", page)
    html = page.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>\n" + CHECK, 1))
    done = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="kerasclf-check">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, done.stdout[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(check["widths"]) == len(images_of(html)) and all(w > 0 for w in check["widths"]), check
    assert check["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "probe.html" in line]
    assert console == [], console
    shot = tmp_path / "shot.png"
    chromium(f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=1200,2400",
             page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
