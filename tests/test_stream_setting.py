"""data.stream / data.memory_fraction: image files decoded into memory or streamed from disk
through tf.data, chosen by the setting or by size; both paths give the same splits and the
same predictions."""

import json
from collections import namedtuple

import numpy as np
import pytest

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
from kerasclf.data.files import FileImages
from kerasclf.errors import ConfigError

Memory = namedtuple("Memory", "available")


def data(root, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=f"folder:{root}", **kwargs)


@pytest.fixture
def folder(tmp_path, make_image_folder):
    return make_image_folder(tmp_path / "imgs", {"a": 12, "b": 12, "c": 12}, size=(10, 14), ext=[".jpg", ".png"])


def test_true_streams_false_decodes(folder):
    streamed = build_dataset(data(folder, stream=True))
    assert isinstance(streamed.train.x, FileImages) and streamed.streamed and streamed.notes["streamed"]
    assert streamed.train.x.shape == (36, 10, 14, 3)
    decoded = build_dataset(data(folder, stream=False))
    assert isinstance(decoded.train.x, np.ndarray) and not decoded.streamed


def test_auto_streams_when_decoded_images_exceed_the_memory_share(folder, monkeypatch):
    import psutil

    from kerasclf.data import budget

    monkeypatch.setattr(budget, "FIXED_BYTES", 0)  # tf.data's own memory would dwarf these 15 KB of images
    decoded = 36 * 10 * 14 * 3  # bytes of the folder's images once decoded
    # the memory budget (kerasclf.data.budget) allows 80% of it: its largest stage here is the statistics,
    # the images plus 5x them
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=decoded * 20))
    assert not build_dataset(data(folder, memory_fraction=0.2)).streamed  # 4x the images' size allowed
    assert build_dataset(data(folder, memory_fraction=0.04)).streamed  # 0.8x their size allowed


def test_auto_without_tensorflow_decodes_and_warns(folder, monkeypatch):
    import psutil

    from kerasclf import backend

    monkeypatch.setattr(backend, "have_tensorflow", lambda: False)
    from kerasclf.data import budget

    monkeypatch.setattr(budget, "FIXED_BYTES", 0)  # tf.data's own memory would dwarf these 15 KB of images
    # more than data.memory_fraction (0.05) of the memory, so auto would stream, but within the 80%
    # the memory budget allows (kerasclf.data.budget: the statistics stage, 6x the images here)
    decoded = 36 * 10 * 14 * 3
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=13 * decoded))
    with pytest.warns(UserWarning, match="streaming needs TensorFlow"):
        ds = build_dataset(data(folder, memory_fraction=0.05))
    assert not ds.streamed
    with pytest.raises(ConfigError, match=r"kerasclf\[tf\]"):
        build_dataset(data(folder, stream=True))


def test_both_paths_drop_the_same_broken_files_and_carve_the_same_splits(folder):
    (folder / "b" / "b500.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "c" / "c500.png").write_bytes((folder / "c" / "c001.png").read_bytes()[:50])
    cfg = dict(val_fraction=0.25, test_fraction=0.2)
    with pytest.warns(UserWarning, match="Skipped 2 unreadable"):
        streamed = build_dataset(data(folder, stream=True, **cfg), seed=5)
    with pytest.warns(UserWarning, match="Skipped 2 unreadable"):
        decoded = build_dataset(data(folder, stream=False, **cfg), seed=5)
    for name in ("train", "val", "test"):
        assert streamed.split(name).paths == decoded.split(name).paths
        np.testing.assert_array_equal(streamed.split(name).y, decoded.split(name).y)
    assert not any(p.endswith(("b500.jpg", "c500.png")) for p in streamed.train.paths)
    np.testing.assert_allclose(streamed.info.mean, decoded.info.mean)  # every train image sampled: same statistics
    np.testing.assert_array_equal(np.asarray(streamed.val.x), decoded.val.x)


@pytest.mark.parametrize("key, value, fragment", [
    ("data.stream", "maybe", "data.stream must be one of auto, true, false"),
    ("data.memory_fraction", "0", "data.memory_fraction must be in (0, 1]"),
    ("data.memory_fraction", "1.5", "data.memory_fraction must be in (0, 1]"),
])
def test_bad_stream_settings_are_refused(cli, user_error, key, value, fragment):
    user_error(cli("train", "--dry-run", "--set", "data.source=synthetic", "--set", f"{key}={value}"), fragment)


def test_streamed_data_cannot_be_put_on_the_device(cli, user_error, folder, tiny_cnn, tmp_path):
    user_error(
        cli("train", "--set", f"data.source=folder:{folder}", "--set", "data.stream=true",
            "--set", "train.data_on_device=true", "--set", f"train.log_dir={tmp_path / 'logs'}", *tiny_cnn),
        "data.stream", "train.data_on_device",
    )


@pytest.mark.slow
@pytest.mark.backend_agnostic
def test_streamed_run_trains_evaluates_and_predicts_like_the_in_memory_path(cli, folder, tiny_cnn, tmp_path):
    pytest.importorskip("tensorflow")
    from kerasclf.data.pipeline import predict_inputs
    from kerasclf.evaluation.evaluate import load_checkpoint

    logs = tmp_path / "logs"
    result = cli(
        "train", "--set", f"data.source=folder:{folder}", "--set", "data.stream=true",
        "--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.25", "--set", "data.batch_size=8",
        "--set", "train.epochs=2", "--set", "train.verbose=0", "--set", f"train.log_dir={logs}", *tiny_cnn,
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = logs.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["streamed"] is True and metrics["data_on_device"] is False
    assert metrics["epochs_run"] == 2 and metrics["test_size"] == 9
    assert (run_dir / "eval" / "test" / "report.md").is_file()
    assert (run_dir / "eval" / "test" / "samples.png").is_file()  # galleries read the files they show
    model, _ = load_checkpoint(run_dir / "best.keras")
    cfg = dict(val_fraction=0.25, test_fraction=0.25)
    streamed = build_dataset(data(folder, stream=True, **cfg)).test
    decoded = build_dataset(data(folder, stream=False, **cfg)).test
    probs_streamed = model.predict(**predict_inputs(streamed, 4), verbose=0)
    probs_decoded = model.predict(**predict_inputs(decoded, 4), verbose=0)
    np.testing.assert_allclose(probs_streamed, probs_decoded, atol=1e-5)  # same pixels, same order
    accuracy = float((probs_streamed.argmax(-1) == streamed.y).mean())
    assert metrics["test_accuracy"] == pytest.approx(accuracy)
