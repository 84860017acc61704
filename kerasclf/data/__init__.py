"""Data sets: registered sources -> in-memory splits -> tf.data (see pipeline.py).

`build_dataset(cfg.data, seed)` returns a `Dataset`: uint8 train/val/test splits, class
names and the train split's per-channel statistics.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from kerasclf.config import FOLDER_PREFIX, DataConfig, data_task
from kerasclf.data.cache import cache_dir
from kerasclf.data.files import choose_stream, decode_split, is_streamed, readable_split
from kerasclf.data.geometry import fit_mask
from kerasclf.data.images import resize_array
from kerasclf.data.info import DatasetInfo
from kerasclf.data.registry import DATASETS, RawDataset, register_dataset  # noqa: F401
from kerasclf.data.sources.folder import load_folder
from kerasclf.data.splits import Split, channel_stats, limit_per_class, select_classes, stratified_split
from kerasclf.errors import DataError


def load_builtin_datasets():
    return DATASETS.load()


@dataclass
class Dataset:
    info: DatasetInfo
    train: Split
    val: Split | None
    test: Split | None
    notes: dict = field(default_factory=dict)  # the source's notes, plus "streamed"

    @property
    def streamed(self):
        """True when the splits stay on disk and training streams them (data.stream)."""
        return any(is_streamed(s) for s in (self.train, self.val, self.test))

    def split(self, name):
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def sizes(self):
        return {f"{k}_size": len(s) if s is not None else 0 for k, s in
                (("train", self.train), ("val", self.val), ("test", self.test))}


def load_raw(source, data_cfg, seed=0, keep_files=False):
    """The source's own splits, before class selection and carving."""
    if source.startswith(FOLDER_PREFIX):
        return load_folder(
            source[len(FOLDER_PREFIX):], data_cfg.image_size, data_cfg.resize, seed,
            stream=True if keep_files else data_cfg.stream, memory_fraction=data_cfg.memory_fraction,
            batch_size=data_cfg.batch_size, cache=decoded_cache(data_cfg),
        )
    entry = load_builtin_datasets().get(source)
    return entry.factory(data_cfg, cache_dir(data_cfg.data_dir))


def decoded_cache(data_cfg: DataConfig):
    """The folder of the decoded-image cache (kerasclf.data.decoded), or None when data.decoded_cache is off."""
    return cache_dir(data_cfg.data_dir) if getattr(data_cfg, "decoded_cache", True) else None


def build_dataset(data_cfg: DataConfig, seed: int = 0, keep_files: bool = False) -> Dataset:
    """keep_files: leave image files on disk whatever data.stream says (for code that reads
    them a chunk at a time, such as the data report; training needs data.stream for that)."""
    if data_cfg.split_seed is not None:
        seed = data_cfg.split_seed  # the same held-out images whatever the run's seed
    task = data_task(data_cfg)
    raw = load_raw(data_cfg.source, data_cfg, seed, keep_files)
    splits, class_names = _decode_or_stream(raw.splits, data_cfg, keep_files), list(raw.class_names)
    if data_cfg.classes is not None and task == "multiclass":
        splits, class_names = select_classes(splits, class_names, data_cfg.classes)
    _check_class_count(data_cfg, class_names)
    # multi-hot vectors and masks cannot be stratified by class: a seeded random carving
    carve = stratified_split if task == "multiclass" else random_split
    train = splits["train"]
    test = splits.get("test")
    if test is None and data_cfg.test_fraction > 0:
        train, test = carve(train, data_cfg.test_fraction, seed, what="data.test_fraction", class_names=class_names)
    val = splits.get("val")
    if val is None and data_cfg.val_fraction > 0:
        train, val = carve(train, data_cfg.val_fraction, seed, class_names=class_names)
    if data_cfg.limit_per_class:
        if task != "multiclass":
            raise DataError(f"data.limit_per_class counts images per class, which a {task} data set does not have.")
        train = limit_per_class(train, data_cfg.limit_per_class, seed)
    if data_cfg.image_size is not None:
        size = tuple(data_cfg.image_size)
        train, val, test = (
            None if s is None else Split(resize_array(s.x, size, data_cfg.resize), _fit_labels(s.y, size, task, data_cfg.resize), s.paths)
            for s in (train, val, test)
        )
    if train.x.shape[-1] == 1:  # grayscale sources become RGB so every model takes them
        train, val, test = (None if s is None else Split(np.repeat(s.x, 3, -1), s.y, s.paths) for s in (train, val, test))
    streamed = is_streamed(train)
    mean, std = channel_stats(train.x, max_images=2000 if streamed else 10000, seed=seed)
    info = DatasetInfo(
        source=data_cfg.source,
        class_names=class_names,
        image_size=tuple(train.x.shape[1:3]),
        channels=train.x.shape[-1],
        mean=mean,
        std=std,
        task=task,
    )
    return Dataset(info, train, val, test, notes={**raw.notes, "streamed": streamed})


def random_split(split, fraction, seed, what="data.val_fraction", class_names=None):
    """(rest, carved): a seeded random `fraction` carved out (for labels that are not one class)."""


    n = len(split)
    n_carved = math.ceil(fraction * n)
    if n_carved < 1 or n - n_carved < 1:
        raise DataError(f"{what}={fraction} cannot split {n} image(s) into two non-empty parts; add images or set {what}=0.")
    order = np.random.default_rng(seed).permutation(n)
    return split.take(np.sort(order[n_carved:])), split.take(np.sort(order[:n_carved]))


def _fit_labels(y, size, task, policy):
    """Segmentation masks follow their images to `size` (nearest; padding is void); other labels stay."""
    if task != "segmentation" or y.shape[1:3] == tuple(size):
        return y

    return np.stack([fit_mask(m, size, policy) for m in y])


def _decode_or_stream(splits, data_cfg, keep_files=False):
    """Splits of files (FileImages) decoded into memory, or kept on disk to be streamed
    (data.stream / data.memory_fraction); array splits unchanged."""
    on_disk = [name for name, s in splits.items() if is_streamed(s)]
    if not on_disk:
        return splits
    count = sum(len(splits[name]) for name in on_disk)
    size = splits[on_disk[0]].x.image_size
    stream = keep_files or choose_stream(data_cfg.stream, count, size, data_cfg.memory_fraction)
    if stream:
        return {name: readable_split(s, f"{data_cfg.source} ({name})") if name in on_disk else s
                for name, s in splits.items()}
    cache = decoded_cache(data_cfg)
    return {name: decode_split(s, f"{data_cfg.source} ({name})", cache) if name in on_disk else s
            for name, s in splits.items()}


def _check_class_count(data_cfg, class_names):
    """One class is not a classification problem: every prediction would be right."""
    if len(class_names) < 2:
        found = f"only the class {class_names[0]!r}" if class_names else "no class"
        raise DataError(
            f"The data {data_cfg.source!r} has {found}{' after data.classes' if data_cfg.classes else ''}; "
            "classification needs at least 2 classes (a model with one output is right on every image). "
            "Add a folder of images for another class, or choose more classes."
        )

