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


def load_raw(source, data_cfg, seed=0):
    """The source's own splits, before class selection and carving."""
    from kerasclf.data.cache import cache_dir

    if source.startswith(FOLDER_PREFIX):
        from kerasclf.data.sources.folder import load_folder

        return load_folder(source[len(FOLDER_PREFIX):], data_cfg.image_size, data_cfg.resize, seed)
    entry = load_builtin_datasets().get(source)
    return entry.factory(data_cfg, cache_dir(data_cfg.data_dir))


def build_dataset(data_cfg, seed=0):
    _check_fractions(data_cfg)
    raw = load_raw(data_cfg.source, data_cfg, seed)
    splits, class_names = raw.splits, list(raw.class_names)
    if data_cfg.classes is not None:
        splits, class_names = select_classes(splits, class_names, data_cfg.classes)
    _check_class_count(data_cfg, class_names)
    train = splits["train"]
    test = splits.get("test")
    if test is None and data_cfg.test_fraction > 0:
        train, test = stratified_split(train, data_cfg.test_fraction, seed, what="data.test_fraction", class_names=class_names)
    val = splits.get("val")
    if val is None and data_cfg.val_fraction > 0:
        train, val = stratified_split(train, data_cfg.val_fraction, seed, class_names=class_names)
    if data_cfg.limit_per_class:
        train = limit_per_class(train, data_cfg.limit_per_class, seed)
    if data_cfg.image_size is not None:
        from kerasclf.data.images import resize_array

        size = tuple(data_cfg.image_size)
        train, val, test = (
            None if s is None else Split(resize_array(s.x, size, data_cfg.resize), s.y, s.paths) for s in (train, val, test)
        )
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


def _check_class_count(data_cfg, class_names):
    """One class is not a classification problem: every prediction would be right."""
    from kerasclf.errors import DataError

    if len(class_names) < 2:
        found = f"only the class {class_names[0]!r}" if class_names else "no class"
        raise DataError(
            f"The data {data_cfg.source!r} has {found}{' after data.classes' if data_cfg.classes else ''}; "
            "classification needs at least 2 classes (a model with one output is right on every image). "
            "Add a folder of images for another class, or choose more classes."
        )


def _check_fractions(data_cfg):
    for key in ("val_fraction", "test_fraction"):
        value = getattr(data_cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(f"data.{key} must be in [0, 1), got {value}.")
