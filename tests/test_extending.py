"""README "Extending kerasclf": its code blocks, run as written, register working entries."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory):
    text = README.read_text()
    section = text.split("## Extending kerasclf", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4, "the README shows a loss, an optimizer, a schedule and a report section"
    path = tmp_path_factory.mktemp("plugins") / "my_extensions.py"
    path.write_text("\n\n".join(blocks))
    return path


def test_readme_extensions_train_and_report(plugin_file, tmp_path):
    from kerasclf.config import load_config
    from kerasclf.registry import LOSSES, OPTIMIZERS, REPORT_SECTIONS, SCHEDULES
    from kerasclf.training.run import train

    cfg = load_config(None, [
        f"plugins=[{plugin_file}]", "data.source=synthetic", "model.name=cnn", "model.filters=[8]",
        "model.dense=[16]", "loss.name=poly1", "optim.name=lion", "optim.lr=0.001",
        "optim.schedule=exponential", "optim.gamma=0.5", "train.epochs=2", f"train.log_dir={tmp_path}",
    ])
    assert {"poly1", "lion", "exponential", "confidence"} <= (
        set(LOSSES.names()) | set(OPTIMIZERS.names()) | set(SCHEDULES.names()) | set(REPORT_SECTIONS.names())
    )
    run_dir, metrics = train(cfg, verbose=0)
    assert metrics["epochs_run"] == 2 and metrics["loss"] == "poly1"
    import csv

    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.5 * float(rows[0]["learning_rate"]), rel=0.05)
    report = Path(metrics["report_path"]).read_text()
    assert "## Confidence" in report
    assert report.index("## Confidence") < report.index("## Classification report")


def test_poly1_from_the_readme_is_cross_entropy_plus_the_missing_probability(plugin_file):
    from kerasclf.config import load_config
    from kerasclf.losses import build_loss

    loss, labels = build_loss(load_config(None, [f"plugins=[{plugin_file}]", "loss.name=poly1"]))
    assert labels == "one_hot"
    y = np.eye(3, dtype="float32")[[0, 2]]
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]], "float32")
    expected = np.mean(-np.log([0.7, 0.6]) + (1 - np.array([0.7, 0.6])))
    assert float(np.asarray(loss(y, p))) == pytest.approx(expected, rel=1e-5)


def test_a_plugin_that_does_not_import_is_a_config_error(tmp_path, cli, user_error):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    user_error(cli("train", "--dry-run", "--set", f"plugins=[{broken}]"), "plugins", "broken.py", "no_such_module_anywhere")
