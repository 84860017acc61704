"""Zero-shot label mapping: the shipped ImageNet -> CIFAR-10 / STL-10 tables and the metrics (issue 20)."""

import csv
import json

import numpy as np
import pytest
from conftest import class_image, write_image

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10 = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


@pytest.fixture(scope="module")
def keras_hub_names():
    """KerasHub's own list, read through its public function (the oracle for the tables' names)."""
    utils = pytest.importorskip("keras_hub.utils")
    return [utils.imagenet_id_to_name(i) for i in range(1000)]


def raw_table(name):
    """The YAML file as written (indices and names), without kerasclf's loader."""
    import yaml

    from kerasclf.features.imagenet import MAPPINGS

    raw = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text())
    return raw["classes"]


@pytest.mark.parametrize("name, classes", [("cifar10", CIFAR10), ("stl10", STL10)])
def test_shipped_table_indices_exist_once_and_names_match_keras_hub(name, classes, keras_hub_names):
    table = raw_table(name)
    assert list(table) == classes
    seen = []
    for target, entry in table.items():
        assert entry["note"].strip(), target
        assert entry["imagenet"], target
        for index, imagenet_name in entry["imagenet"].items():
            assert isinstance(index, int) and 0 <= index < 1000, (target, index)
            assert keras_hub_names[index] == imagenet_name, (target, index, imagenet_name)
            seen.append(index)
    assert len(seen) == len(set(seen)), "an ImageNet class is mapped twice"
    from kerasclf.features.imagenet import load_mapping

    mapping = load_mapping(name)  # kerasclf's own loader agrees (it checks against KerasHub too)
    target = mapping.target_index()
    assert (target < len(classes)).sum() == len(seen)
    assert set(np.flatnonzero(target == len(classes))) == set(range(1000)) - set(seen)


def test_frogs_and_monkeys_map_as_documented(keras_hub_names):
    cifar, stl = raw_table("cifar10"), raw_table("stl10")
    assert sorted(cifar["frog"]["imagenet"]) == [30, 31, 32]  # bullfrog, tree_frog, tailed_frog
    assert {keras_hub_names[i] for i in cifar["frog"]["imagenet"]} == {"bullfrog", "tree_frog", "tailed_frog"}
    assert sorted(stl["monkey"]["imagenet"]) == list(range(370, 383))
    assert 134 in cifar["bird"]["imagenet"] and 517 not in {i for e in cifar.values() for i in e["imagenet"]}


def test_a_bad_table_is_refused_with_every_problem_named(tmp_path):
    from kerasclf.errors import ConfigError
    from kerasclf.features.imagenet import load_mapping

    bad = tmp_path / "bad.yaml"
    bad.write_text("target: x\nclasses:\n  a: {imagenet: {1: goldfish, 1000: nothing}}\n"
                   "  b: {imagenet: {1: goldfish, 2: tench}}\n")
    names = ["tench", "goldfish", "great_white_shark"] + [f"n{i}" for i in range(3, 1000)]
    with pytest.raises(ConfigError) as err:
        load_mapping(bad, names=names)
    text = str(err.value)
    assert "index 1000" in text and "mapped to both 'a' and 'b'" in text and "2: 'tench' but ImageNet class 2 is 'great_white_shark'" in text


@pytest.mark.backend_agnostic
def test_precision_recall_and_confusion_equal_sklearn_and_counting():
    from sklearn.metrics import precision_score, recall_score

    from kerasclf.features.zeroshot import zeroshot_metrics

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.4, y_true, rng.integers(0, 11, 500))  # 10 is "other"
    m = zeroshot_metrics(y_true, y_pred, CIFAR10)
    assert np.array(m["confusion"]).shape == (10, 11) and m["labels"][-1] == "other"
    counted = np.zeros((10, 11), int)
    for t, p in zip(y_true, y_pred):
        counted[t, p] += 1
    assert m["confusion"] == counted.tolist()
    assert m["accuracy"] == pytest.approx((y_true == y_pred).mean())
    precision = precision_score(y_true, y_pred, labels=list(range(10)), average=None, zero_division=0)
    recall = recall_score(y_true, y_pred, labels=list(range(10)), average=None, zero_division=0)
    assert [r["precision"] for r in m["per_class"]] == pytest.approx(precision.tolist())
    assert [r["recall"] for r in m["per_class"]] == pytest.approx(recall.tolist())
    for c, row in enumerate(m["per_class"]):
        assert row["precision"] == pytest.approx(counted[c, c] / counted[:, c].sum())
        assert row["recall"] == pytest.approx(counted[c, c] / counted[c].sum())
        assert row["to_other"] == counted[c, 10]
    assert m["other_share"] == pytest.approx((y_pred == 10).mean())


@pytest.mark.slow
def test_zeroshot_end_to_end_with_an_untrained_classifier(tmp_path):
    """The command's plumbing (random weights: the figures mean nothing, the files and counts do)."""
    from click.testing import CliRunner

    from kerasclf.cli import main

    root = tmp_path / "data"
    for name in CIFAR10:
        for i in range(2):
            write_image(root / name / f"{i}.png", class_image(name, (16, 16), seed=i))
    out = tmp_path / "zs"
    result = CliRunner().invoke(main, ["zeroshot", "--model", "efficientnet_b0", "--weights", "none",
                                       "--data", f"folder:{root}", "--classes", "cifar10", "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((out / "zeroshot.json").read_text())
    assert metrics["size"] == 20 and np.array(metrics["confusion"]).sum() == 20
    assert metrics["input_size"] == 224
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from kerasclf.features.imagenet import load_mapping

    table = load_mapping("cifar10").target_index()
    labels = metrics["labels"]
    assert [r["mapped"] for r in rows] == [labels[table[int(r["imagenet_top1"])]] for r in rows]
    assert (out / "confusion_matrix.png").is_file() and "| frog |" in (out / "zeroshot.md").read_text()
