"""docs/extending.md: every code block, run as written, registers an entry that works in a run.

The blocks of each `## ` section go into their own plugin file, as a newcomer would save
them, and reach the run through `plugins:` only.
"""

import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from kerasclf import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
REGISTRIES = [value for value in vars(registry).values() if isinstance(value, registry.Registry)]


def section_code(title):
    """The python blocks under `## <title>` in docs/extending.md, joined."""
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", DOC.read_text(), flags=re.S | re.M))
    assert title in sections, f"docs/extending.md has no section {title!r}: {sorted(sections)}"
    blocks = re.findall(r"```python\n(.*?)```", sections[title], flags=re.S)
    assert blocks, f"section {title!r} shows no python code"
    return "\n\n".join(blocks)


@pytest.fixture(scope="module", autouse=True)
def _registries_restored():
    """The plugins register into the process-wide registries: take their entries out again, so
    that tests which list every entry (test_contracts) see only the package's own."""
    before = {id(r): dict(r.load()._entries) for r in REGISTRIES}
    modules = set(sys.modules)
    yield
    for r in REGISTRIES:
        r._entries.clear()
        r._entries.update(before[id(r)])
    for name in set(sys.modules) - modules:
        if name.startswith("kerasclf_plugin_"):
            del sys.modules[name]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """plugin(title, filename) -> path of a .py file holding that section's code."""
    folder = tmp_path_factory.mktemp("plugins")

    def write(title, filename):
        path = folder / filename
        path.write_text(section_code(title))
        return path

    return write


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def train(overrides, tmp_path):
    from kerasclf.config import load_config
    from kerasclf.training.run import train as run_training

    cfg = load_config(None, [*overrides, "train.verbose=0", f"train.log_dir={tmp_path / 'logs'}"])
    return run_training(cfg, verbose=0)


def test_a_model_from_the_docs_trains_with_its_own_layers_and_keyword(plugin, tmp_path):
    from kerasclf.evaluation.evaluate import load_checkpoint

    path = plugin("A model", "my_model.py")
    run_dir, metrics = train([f"plugins=[{path}]", "data.source=synthetic", "model.name=tiny_convnet",
                              "model.width=4", "train.epochs=1", "train.evaluate_after=false"], tmp_path)
    assert metrics["epochs_run"] == 1 and metrics["model"] == "tiny_convnet"
    model, labels = load_checkpoint(run_dir / metrics["checkpoint"])
    for name in ("conv1", "conv2", "gap"):
        model.get_layer(name)
    # width 4: conv1 3x3x3 -> 4, conv2 3x3x4 -> 8, then the head 8 -> 4 classes (weights + biases)
    expected = (3 * 3 * 3 * 4 + 4) + (3 * 3 * 4 * 8 + 8) + (8 * 4 + 4)
    assert metrics["params_trainable"] == expected
    assert labels.class_names == [f"class{c}" for c in range(4)]


def test_a_model_keyword_that_the_builder_lacks_is_refused(plugin, cli, user_error):
    path = plugin("A model", "my_model.py")
    user_error(cli("train", "--dry-run", "--set", f"plugins=[{path}]", "--set", "model.name=tiny_convnet",
                   "--set", "model.widht=8"), "widht", "tiny_convnet", "width")


def test_a_data_set_from_the_docs_reads_its_file_and_carves_validation(plugin, tmp_path):
    rng = np.random.default_rng(0)
    colours = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230]], "uint8")

    def images(n):
        y = np.arange(n) % 3
        noise = rng.integers(0, 20, (n, 16, 16, 3))
        return np.clip(colours[y][:, None, None, :] + noise, 0, 255).astype("uint8"), y

    (x_train, y_train), (x_test, y_test) = images(90), images(30)
    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(folder / "my_arrays.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["red", "green", "blue"]))

    path = plugin("A data set", "my_data.py")
    run_dir, metrics = train([f"plugins=[{path}]", "data.source=my_arrays", f"data.data_dir={folder}",
                              "data.val_fraction=0.2", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
                              "optim.lr=0.003", "train.epochs=4", "train.evaluate_after=false"], tmp_path)
    assert metrics["class_names"] == ["red", "green", "blue"]
    assert (metrics["train_size"], metrics["val_size"], metrics["test_size"]) == (72, 18, 30)
    assert metrics["test_accuracy"] > 0.9  # three flat colours: learnt, so images and labels stayed paired


def test_the_data_set_example_looks_for_its_file_in_the_data_folder(plugin, tmp_path):
    """data.data_dir is the folder it is given: an empty one has no my_arrays.npz."""
    from kerasclf.config import load_config
    from kerasclf.data import build_dataset

    path = plugin("A data set", "my_data.py")
    cfg = load_config(None, [f"plugins=[{path}]", "data.source=my_arrays", f"data.data_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="my_arrays.npz"):
        build_dataset(cfg.data)


def test_an_auxiliary_loss_from_the_docs_is_the_batch_class_mean_distance(plugin):
    import keras

    from kerasclf.config import load_config
    from kerasclf.registry import AUX_LOSSES

    path = plugin("An auxiliary loss", "my_aux.py")
    cfg = load_config(None, [f"plugins=[{path}]", "loss.aux=batch_center"])
    aux = AUX_LOSSES.get(cfg.loss.aux).factory(cfg.loss, 4)
    rng = np.random.default_rng(0)
    embedding, labels = rng.normal(size=(12, 5)).astype("float32"), np.array([0, 1, 1, 3] * 3)
    expected = np.mean([np.sum((e - embedding[labels == c].mean(axis=0)) ** 2) for e, c in zip(embedding, labels)])
    got = float(keras.ops.convert_to_numpy(aux(keras.ops.convert_to_tensor(embedding), keras.ops.convert_to_tensor(labels))))
    assert got == pytest.approx(expected, rel=1e-5)


def test_an_auxiliary_loss_from_the_docs_trains_next_to_cross_entropy(plugin, tmp_path):
    path = plugin("An auxiliary loss", "my_aux.py")
    run_dir, metrics = train([f"plugins=[{path}]", "data.source=synthetic", "model.name=cnn", "model.filters=[8]",
                              "model.dense=[16]", "loss.aux=batch_center", "loss.aux_weight=0.1", "train.epochs=2",
                              "train.evaluate_after=false"],  # no embedding report (t-SNE): the loss is the point
                             tmp_path)
    assert metrics["epochs_run"] == 2
    rows = history(run_dir)
    for row in rows:
        aux, total = float(row["aux_loss"]), float(row["loss"])
        assert 0 < 0.1 * aux < total  # a part of the loss, not all of it
        assert np.isfinite(float(row["val_aux_loss"]))


def test_an_auxiliary_loss_name_nobody_registered_is_refused(cli, user_error):
    user_error(cli("train", "--dry-run", "--set", "loss.aux=batch_centre"), "loss.aux", "batch_centre")


@pytest.fixture(scope="module")
def extensions(plugin):
    """The classification loss, optimizer, schedule and report section, in one file as the docs use them."""
    titles = ("A classification loss", "An optimizer", "A learning-rate schedule", "A report section")
    path = plugin(titles[0], "my_extensions.py")
    path.write_text("\n\n".join(section_code(t) for t in titles))
    return path


def test_loss_optimizer_schedule_and_section_from_the_docs_train_and_report(extensions, tmp_path):
    run_dir, metrics = train([
        f"plugins=[{extensions}]", "data.source=synthetic", "model.name=cnn", "model.filters=[8]",
        "model.dense=[16]", "loss.name=poly1", "optim.name=lion", "optim.lr=0.001",
        "optim.schedule=exponential", "optim.gamma=0.5", "train.epochs=2",
    ], tmp_path)
    assert metrics["epochs_run"] == 2 and metrics["loss"] == "poly1"
    rows = history(run_dir)
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.5 * float(rows[0]["learning_rate"]), rel=0.05)
    report = Path(metrics["report_path"]).read_text()
    assert "## Confidence" in report
    assert report.index("## Confidence") < report.index("## Classification report")


def test_poly1_from_the_docs_is_cross_entropy_plus_the_missing_probability(extensions):
    from kerasclf.config import load_config
    from kerasclf.losses import build_loss

    loss, labels = build_loss(load_config(None, [f"plugins=[{extensions}]", "loss.name=poly1"]))
    assert labels == "one_hot"
    y = np.eye(3, dtype="float32")[[0, 2]]
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]], "float32")
    expected = np.mean(-np.log([0.7, 0.6]) + (1 - np.array([0.7, 0.6])))
    assert float(np.asarray(loss(y, p))) == pytest.approx(expected, rel=1e-5)


def test_a_plugin_that_does_not_import_is_a_config_error(tmp_path, cli, user_error):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    user_error(cli("train", "--dry-run", "--set", f"plugins=[{broken}]"), "plugins", "broken.py", "no_such_module_anywhere")
