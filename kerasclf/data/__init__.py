"""Data sets: registered sources -> in-memory splits -> tf.data (see pipeline.py).

`build_dataset(cfg.data, seed)` returns a `Dataset`: uint8 train/val/test splits, class
names and the train split's per-channel statistics.
"""

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from kerasclf.config import FOLDER_PREFIX, DataConfig, data_task
from kerasclf.data.budget import check_data
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
    # the memory budget ruled out train.data_on_device=auto's device-resident table (kerasclf.data.budget)
    resident_ruled_out: bool = False

    @property
    def streamed(self):
        """True when the splits stay on disk and training streams them (data.stream)."""
        return any(is_streamed(s) for s in (self.train, self.val, self.test))

    def split(self, name):
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def sizes(self):
        return {f"{k}_size": len(s) if s is not None else 0 for k, s in
                (("train", self.train), ("val", self.val), ("test", self.test))}


def load_raw(source, data_cfg, seed=0, keep_files=False, training=None):
    """The source's own splits, before class selection and carving. training: what training
    will hold (kerasclf.data.budget.Training), for the memory budget checked before decoding."""
    if source.startswith(FOLDER_PREFIX):
        return load_folder(
            source[len(FOLDER_PREFIX):], data_cfg.image_size, data_cfg.resize, seed,
            stream=True if keep_files else data_cfg.stream, memory_fraction=data_cfg.memory_fraction,
            batch_size=data_cfg.batch_size, cache=decoded_cache(data_cfg),
            memory=partial(check_data, data_cfg, training=training),
        )
    entry = load_builtin_datasets().get(source)
    return entry.factory(data_cfg, cache_dir(data_cfg.data_dir))


def decoded_cache(data_cfg: DataConfig):
    """The folder of the decoded-image cache (kerasclf.data.decoded), or None when data.decoded_cache is off."""
    return cache_dir(data_cfg.data_dir) if getattr(data_cfg, "decoded_cache", True) else None


def build_dataset(data_cfg: DataConfig, seed: int = 0, keep_files: bool = False, training=None) -> Dataset:
    """keep_files: leave image files on disk whatever data.stream says (for code that reads
    them a chunk at a time, such as the data report; training needs data.stream for that).
    training: what training will hold (kerasclf.data.budget.Training; None when nothing trains):
    the memory budget (kerasclf.data.budget) counts it before anything is decoded."""
    if data_cfg.split_seed is not None:
        seed = data_cfg.split_seed  # the same held-out images whatever the run's seed
    task = data_task(data_cfg)
    raw = load_raw(data_cfg.source, data_cfg, seed, keep_files, training)
    splits = _decode_or_stream(raw.splits, data_cfg, keep_files, training, seed)
    if not data_cfg.source.startswith(FOLDER_PREFIX) and not any(is_streamed(s) for s in raw.splits.values()):
        _check_arrays(splits, data_cfg, training)  # folders and files were checked before decoding
    class_names = list(raw.class_names)
    # Carving moves row numbers, not images; _take_rows copies each final split's images once
    # (taking them split by split held the decoded array, an intermediate split and its parts: 3x).
    splits, origins = _row_numbers(splits)
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
    size = None if data_cfg.image_size is None else tuple(data_cfg.image_size)
    train, val, test = (_take_rows(s, origins, size, data_cfg.resize) for s in (train, val, test))
    notes = raw.notes
    del splits, origins, raw  # the decoded array: freed once the splits are taken from it
    if size is not None:
        train, val, test = (
            None if s is None else Split(s.x, _fit_labels(s.y, size, task, data_cfg.resize), s.paths)
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
    return Dataset(info, train, val, test, notes={**notes, "streamed": streamed},
                   resident_ruled_out=bool(training is not None and training.ruled_out))


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


def _row_numbers(splits):
    """Array splits with their images replaced by (origin, row) pairs, and {origin: images}:
    carving, class selection and limit_per_class then move pairs (Split.take). Files on disk
    (FileImages) are returned as they are: taking from them decodes nothing."""
    if any(is_streamed(s) for s in splits.values()):
        return splits, None
    origins, out = {}, {}
    for k, (name, split) in enumerate(splits.items()):
        origins[k] = split.x
        out[name] = Split(np.stack([np.full(len(split), k), np.arange(len(split))], 1), split.y, split.paths)
    return out, origins


def _take_rows(split, origins, size=None, policy="crop"):
    """The split's images taken from its origin once (no copy when it is the origin whole),
    fitted to `size` on the way when given (data.image_size on an array source)."""
    if split is None or origins is None:
        return split if split is None or size is None else Split(resize_array(split.x, size, policy), split.y, split.paths)
    which, rows = split.x[:, 0], split.x[:, 1]
    source = origins[int(which[0])] if len(which) else next(iter(origins.values()))
    if len(which) and (which != which[0]).any():  # carving takes from one split only
        raise AssertionError("a split took images from two source splits")
    if size is not None and source.shape[1:3] != tuple(size):
        return Split(resize_array(source, size, policy, rows=rows), split.y, split.paths)
    whole = len(rows) == len(source) and np.array_equal(rows, np.arange(len(source)))
    return Split(source if whole else source[rows], split.y, split.paths)


def _check_arrays(splits, data_cfg, training):
    """The memory budget of a source that returned arrays (already in memory: the splits,
    resizing to data.image_size, statistics and the resident table are still to come)."""
    arrays = [s.x for s in splits.values() if s is not None]
    count = sum(len(x) for x in arrays)
    if not count:
        return
    size = tuple(data_cfg.image_size) if data_cfg.image_size is not None else tuple(arrays[0].shape[1:3])
    held = sum(x.nbytes for x in arrays)
    resized = size != tuple(arrays[0].shape[1:3]) or arrays[0].shape[-1] != 3
    check_data(data_cfg, f"The data {data_cfg.source!r}", count, size, list(splits), decode=False,
               source_bytes=held if resized else 0, training=training)


def _decode_or_stream(splits, data_cfg, keep_files=False, training=None, seed=0):
    """Splits of files (FileImages) decoded into memory, or kept on disk to be streamed
    (data.stream / data.memory_fraction); array splits unchanged."""
    on_disk = [name for name, s in splits.items() if is_streamed(s)]
    if not on_disk:
        return splits
    count = sum(len(splits[name]) for name in on_disk)
    size = splits[on_disk[0]].x.image_size
    stream = keep_files or choose_stream(data_cfg.stream, count, size, data_cfg.memory_fraction)
    paths = [p for name in on_disk for p in splits[name].x.paths]
    if not data_cfg.source.startswith(FOLDER_PREFIX):  # a folder was checked by load_folder
            check_data(data_cfg, f"The data {data_cfg.source!r}", count, size, list(splits), paths=paths,
                   streamed=stream, training=training, seed=seed)
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

