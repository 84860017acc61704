"""Data sets: registered sources -> in-memory splits -> tf.data (see pipeline.py).

`build_dataset(cfg.data, seed)` returns a `Dataset`: uint8 train/val/test splits, class
names and the train split's per-channel statistics.
"""

import importlib
from dataclasses import dataclass

from kerasclf.data.info import DatasetInfo
from kerasclf.data.registry import DATASETS, RawDataset, register_dataset  # noqa: F401
from kerasclf.data.splits import Split, channel_stats, limit_per_class, select_classes, stratified_split
from kerasclf.errors import ConfigError

_BUILTIN_MODULES = (
    "kerasclf.data.sources.digits",
    "kerasclf.data.sources.synthetic",
    "kerasclf.data.sources.cifar",
)
FOLDER_PREFIX = "folder:"


def load_builtin_datasets():
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    return DATASETS


@dataclass
class Dataset:
    info: DatasetInfo
    train: Split
    val: Split | None
    test: Split | None

    def split(self, name):
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def sizes(self):
        return {f"{k}_size": len(s) if s is not None else 0 for k, s in
                (("train", self.train), ("val", self.val), ("test", self.test))}


def load_raw(source, data_cfg):
    """The source's own splits, before class selection and carving."""
    from kerasclf.data.cache import cache_dir

    if source.startswith(FOLDER_PREFIX):
        from kerasclf.data.sources.folder import load_folder

        return load_folder(source[len(FOLDER_PREFIX):], data_cfg.image_size)
    entry = load_builtin_datasets().get(source)
    return entry.factory(data_cfg, cache_dir(data_cfg.data_dir))


def build_dataset(data_cfg, seed=0):
    _check_fractions(data_cfg)
    if getattr(data_cfg, "split_seed", None) is not None:
        if not 0 <= data_cfg.split_seed < 2**32:
            raise ConfigError(f"data.split_seed must be from 0 to 2**32 - 1, or null, got {data_cfg.split_seed}.")
        seed = data_cfg.split_seed  # the same held-out images whatever the run's seed
    raw = load_raw(data_cfg.source, data_cfg)
    splits, class_names = raw.splits, list(raw.class_names)
    if data_cfg.classes is not None:
        splits, class_names = select_classes(splits, class_names, data_cfg.classes)
    train = splits["train"]
    test = splits.get("test")
    if test is None and data_cfg.test_fraction > 0:
        train, test = stratified_split(train, data_cfg.test_fraction, seed, what="data.test_fraction")
    val = splits.get("val")
    if val is None and data_cfg.val_fraction > 0:
        train, val = stratified_split(train, data_cfg.val_fraction, seed)
    if data_cfg.limit_per_class:
        train = limit_per_class(train, data_cfg.limit_per_class, seed)
    if data_cfg.image_size is not None:
        from kerasclf.data.images import resize_array

        size = tuple(data_cfg.image_size)
        train, val, test = (None if s is None else Split(resize_array(s.x, size), s.y, s.paths) for s in (train, val, test))
    if train.x.shape[-1] == 1:  # grayscale sources become RGB so every model takes them
        import numpy as np

        train, val, test = (None if s is None else Split(np.repeat(s.x, 3, -1), s.y, s.paths) for s in (train, val, test))
    mean, std = channel_stats(train.x, seed=seed)
    info = DatasetInfo(
        source=data_cfg.source,
        class_names=class_names,
        image_size=tuple(train.x.shape[1:3]),
        channels=train.x.shape[-1],
        mean=mean,
        std=std,
    )
    return Dataset(info, train, val, test)


def _check_fractions(data_cfg):
    for key in ("val_fraction", "test_fraction"):
        value = getattr(data_cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(f"data.{key} must be in [0, 1), got {value}.")
