"""Issue 17, part 5: one memory budget for every stage that holds images (kerasclf.data.budget).

A run whose stages would not fit is refused before anything is decoded, by `train --dry-run`
as by the real run, naming the stage that dominates and what to set; the stages that are not
counted (evaluation galleries, t-SNE, the projector's sprite) hold only what they show. The
peak RSS of the counted stages against the estimate: tests/test_memory_budget.py.
"""

from collections import namedtuple

import numpy as np
import psutil
import pytest

Memory = namedtuple("svmem", "available total")
MIB = 2**20


@pytest.fixture
def big_size_folder(tmp_path, make_image_folder):
    """20 small files fitted to 1500x1500: 129 MiB once decoded, nothing decoded to list them."""
    return make_image_folder(tmp_path / "imgs", {"a": 10, "b": 10}, size=(16, 16), ext=".jpg")


def settings(folder, tmp_path, *extra):
    return [f"data.source=folder:{folder}", "data.image_size=[1500, 1500]", "data.stream=false",
            "data.decoded_cache=false", "data.val_fraction=0.2", f"train.log_dir={tmp_path / 'logs'}",
            "model.name=cnn", "model.filters=[8]", "model.dense=[16]", *extra]


@pytest.fixture
def little_memory(monkeypatch):
    """500 MiB available: the budget (80% of it) takes the decoding of 129 MiB of images, not three copies."""
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=500 * MIB, total=1000 * MIB))


@pytest.fixture
def decodes(monkeypatch):
    from kerasclf.data.sources import folder

    calls = []
    monkeypatch.setattr(folder, "decode_files", lambda *args, **kwargs: calls.append(args))
    return calls


def test_prepare_refuses_a_resident_table_that_does_not_fit_before_decoding(big_size_folder, tmp_path,
                                                                          little_memory, decodes):
    from kerasclf.config import load_config
    from kerasclf.errors import DataError
    from kerasclf.training.assemble import prepare

    cfg = load_config(None, settings(big_size_folder, tmp_path, "train.data_on_device=true"))
    with pytest.raises(DataError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "device-resident table stage" in message and "set train.data_on_device=false" in message
    assert "500 MiB available" in message and "20 images at 1500x1500" in message
    assert not decodes  # refused before any image was decoded


def test_without_the_resident_table_the_carved_splits_dominate_and_still_refuse(big_size_folder, tmp_path,
                                                                               little_memory, decodes):
    from kerasclf.config import load_config
    from kerasclf.errors import DataError
    from kerasclf.training.assemble import prepare

    cfg = load_config(None, settings(big_size_folder, tmp_path, "train.data_on_device=false"))
    with pytest.raises(DataError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "at the splits stage" in message and "data.image_size (e.g. [224, 224]" in message
    assert "device-resident" not in message and not decodes


def test_dry_run_refuses_it_too(cli, user_error, big_size_folder, tmp_path, little_memory, decodes):
    args = [a for s in settings(big_size_folder, tmp_path, "train.data_on_device=true") for a in ("--set", s)]
    user_error(cli("train", "--dry-run", *args), "device-resident table", "train.data_on_device=false",
               "available now")
    assert not decodes


def test_the_same_run_fits_with_the_memory_it_needs(big_size_folder, tmp_path, monkeypatch):
    """The refusals above are about the figures, not a blanket rule: with room for every stage the dry run passes."""
    from kerasclf.config import load_config
    from kerasclf.data.budget import Training, check_data
    from kerasclf.training.assemble import prepare

    cfg = load_config(None, settings(big_size_folder, tmp_path, "train.data_on_device=false"))
    paths = sorted(str(p) for p in big_size_folder.rglob("*.jpg"))
    peak = check_data(cfg.data, "probe", 20, (1500, 1500), ["train"], paths=paths, training=Training(False))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=int(peak / 0.8) + MIB, total=2 * peak))
    assert prepare(cfg).summary["train_size"] == 16


def test_streaming_is_counted_by_batches_not_by_the_folder():
    from kerasclf.data.budget import memory_plan

    whole = memory_plan(10_000, (512, 512), decode=True, carve=True)
    streamed = memory_plan(10_000, (512, 512), streamed=True, batch_size=64)
    assert list(streamed.stages) == ["streaming"]
    assert streamed.peak < whole.images / 10 < whole.peak


class CountingImages:
    """An array-like split of images that counts how many are read (as FileImages decodes them)."""

    def __init__(self, count, size=(24, 24)):
        self.count, self.size, self.read = count, size, 0
        self.shape = (count, *size, 3)

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            self.read += 1
            return np.full((*self.size, 3), int(index) % 256, np.uint8)
        return Subset(self, np.arange(self.count)[index])

    def __array__(self, dtype=None, copy=None):
        self.read += self.count
        return np.zeros(self.shape, dtype or np.uint8)


class Subset(CountingImages):
    def __init__(self, parent, rows):
        super().__init__(len(rows), parent.size)
        self.parent, self.rows = parent, rows

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.parent[int(self.rows[index])]
        return Subset(self.parent, self.rows[index])

    def __array__(self, dtype=None, copy=None):
        return np.stack([self.parent[int(i)] for i in self.rows]).astype(dtype or np.uint8)


def test_the_embedding_report_reads_only_the_points_it_shows(tmp_path, monkeypatch):
    """t-SNE and the projector use a subsample of --tsne-points: of a 300-image split on disk, the
    sprite decodes those images only, and t-SNE is fitted on that many points."""
    from kerasclf.evaluation import embeddings as module

    fitted = []
    real_tsne = module.tsne
    monkeypatch.setattr(module, "tsne", lambda x, dims, seed=0: fitted.append(len(x)) or real_tsne(x, dims, seed))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 100)
    vectors = rng.normal(size=(300, 8)) + labels[:, None]
    images = CountingImages(300)
    module.write_embedding_report(tmp_path / "emb", vectors, labels, ["a", "b", "c"], split="test", images=images,
                                  tsne_points=30, projector_points=30)
    assert fitted and max(fitted) <= 30
    assert images.read == 30  # was 300: the whole split was decoded, then 30 kept


def test_galleries_read_only_the_images_they_show(tmp_path):
    from kerasclf.evaluation.figures import plot_misclassified, plot_prediction_grid

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 500)
    y_pred = rng.integers(0, 3, 500)
    images = CountingImages(500)
    plot_prediction_grid(images, y_true, y_pred, ["a", "b", "c"], tmp_path / "samples.png")
    plot_misclassified(images, y_true, y_pred, ["a", "b", "c"], tmp_path / "wrong.png")
    assert 0 < images.read <= 2 * 36


def test_a_source_that_lists_files_is_guarded_too(big_size_folder, tmp_path, little_memory, monkeypatch):
    """Dogs vs Cats lists its files (FileImages) and build_dataset decodes them: that path had no
    guard at all (the issue's 17 GB run). It is refused by the same budget, before decoding."""
    import kerasclf.data as data_module
    from kerasclf.config import load_config
    from kerasclf.data import files
    from kerasclf.data.files import FileImages
    from kerasclf.data.registry import RawDataset
    from kerasclf.data.splits import Split
    from kerasclf.errors import DataError

    paths = sorted(str(p) for p in big_size_folder.rglob("*.jpg"))
    labels = np.array([0 if "/a/" in p else 1 for p in paths], np.int32)
    listed = RawDataset({"train": Split(FileImages(paths, (1500, 1500), verified=True), labels, paths)}, ["cat", "dog"])
    monkeypatch.setattr(data_module, "load_raw", lambda *args, **kwargs: listed)
    decoded = []
    monkeypatch.setattr(files, "decode_files", lambda *args, **kwargs: decoded.append(args))
    cfg = load_config(None, ["data.source=cats-vs-dogs", "data.image_size=[1500, 1500]", "data.stream=false",
                             "data.test_fraction=0.2"])
    with pytest.raises(DataError, match=r"The data 'cats-vs-dogs': 20 images at 1500x1500 .* at the splits stage"):
        data_module.build_dataset(cfg.data)
    assert not decoded


def test_auto_feeds_from_the_host_when_the_resident_table_would_not_fit(big_size_folder, monkeypatch, caplog):
    """train.data_on_device=auto is a choice, not a demand: where the table would not fit but the rest
    does, the run goes on with host feeding (said in a log line); `true` is refused as above."""
    import logging

    from kerasclf.config import load_config
    from kerasclf.data import build_dataset
    from kerasclf.data.budget import Training
    from kerasclf.errors import DataError

    # the splits stage (450 MiB) fits in 80% of 650 MiB, the resident table (579 MiB) does not
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(available=650 * MIB, total=1300 * MIB))
    cfg = load_config(None, [f"data.source=folder:{big_size_folder}", "data.image_size=[1500, 1500]",
                             "data.stream=false", "data.decoded_cache=false", "data.val_fraction=0.2"])
    with caplog.at_level(logging.INFO, logger="kerasclf"):
        data = build_dataset(cfg.data, training=Training("auto"))
    assert data.resident_ruled_out and len(data.train) == 16
    assert "batches are fed from the host instead" in caplog.text
    assert not build_dataset(cfg.data, training=Training(False)).resident_ruled_out
    with pytest.raises(DataError, match="device-resident table stage"):
        build_dataset(cfg.data, training=Training(True))
