"""In-memory splits and the seeded, stratified ways of carving and subsetting them."""

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from kerasclf.errors import ConfigError, DataError, did_you_mean


@dataclass
class Split:
    """uint8 images (N, H, W, C) and int32 labels (N,); `paths` when read from files."""

    x: np.ndarray
    y: np.ndarray
    paths: list | None = None

    def __len__(self):
        return len(self.y)

    def take(self, index):
        paths = None if self.paths is None else [self.paths[i] for i in index]
        return Split(self.x[index], self.y[index], paths)


def stratified_split(split, fraction, seed, what="data.val_fraction", class_names=None):
    """(rest, carved): `fraction` of every class carved out, seeded and stratified (sklearn).

    Never silently unstratified: a class with a single image stays on the `rest` side and a
    warning names it; a carved part smaller than the number of classes is enlarged to one
    image per class, with a warning; too few images for that is a DataError naming `what`.
    """


    n = len(split)
    n_carved = math.ceil(fraction * n)
    if n_carved < 1 or n - n_carved < 1:
        raise DataError(
            f"{what}={fraction} cannot split {n} image(s) into two non-empty parts; "
            f"add images or set {what}=0."
        )
    counts = np.bincount(split.y)
    name = (lambda c: repr(class_names[c])) if class_names is not None else (lambda c: f"label {c}")
    lone = np.flatnonzero(counts == 1)
    if len(lone):
        warnings.warn(
            f"{what}={fraction}: class(es) {', '.join(name(c) for c in lone)} have a single image, which "
            f"is kept for training, so the carved split has no image of them. Add images to those classes "
            "to have them scored.",
            stacklevel=3,
        )
    pool = np.flatnonzero(counts[split.y] >= 2)  # the images that can go to either side
    n_classes = int((counts >= 2).sum())
    n_carved = math.ceil(fraction * len(pool)) if len(lone) else n_carved
    if n_classes and n_carved < n_classes:
        if len(pool) - n_classes < n_classes:
            raise DataError(
                f"{what}={fraction} cannot carve a stratified split: {len(pool)} images in {n_classes} classes "
                f"cannot give every class an image on both sides. Add images or set {what}=0."
            )
        warnings.warn(
            f"{what}={fraction} of {n} images is {n_carved}, fewer than the {n_classes} classes: carving "
            f"{n_classes} (one image per class) so that the split is stratified.",
            stacklevel=3,
        )
        n_carved = n_classes
    if not n_classes or len(pool) - n_carved < n_classes:
        raise DataError(
            f"{what}={fraction} cannot carve {n_carved} image(s) from {len(pool)} and keep every class on "
            f"both sides (classes with 2+ images: {n_classes}). Add images or lower {what}."
        )
    rest, carved = train_test_split(pool, test_size=n_carved, random_state=seed, stratify=split.y[pool])
    rest = np.concatenate([rest, np.flatnonzero(counts[split.y] == 1)])
    return split.take(np.sort(rest)), split.take(np.sort(carved))


def select_classes(splits, class_names, wanted):
    """Keep a class subset and renumber labels 0..k-1. `wanted`: names or 'first:N'."""
    if isinstance(wanted, str) and wanted.startswith("first:"):
        count = wanted.split(":", 1)[1].strip()
        if not count.isdigit() or not 1 <= int(count) <= len(class_names):
            raise ConfigError(
                f"data.classes={wanted!r}: N in 'first:N' must be a whole number from 1 to "
                f"{len(class_names)} (the data set's class count)."
            )
        keep = list(range(int(count)))
    else:
        if isinstance(wanted, str):
            names = [n.strip() for n in wanted.split(",") if n.strip()]
        else:
            names = [str(n) for n in wanted]
        if not names:
            raise ConfigError("data.classes is empty; give class names or 'first:N', or leave it out for all classes.")
        if len(set(names)) != len(names):
            raise ConfigError(f"data.classes names a class twice: {', '.join(names)}.")
        keep = []
        for name in names:
            if name not in class_names:
                same_letters = [c for c in class_names if c.lower() == name.lower()]
                hint = (
                    f' Class names are case-sensitive: did you mean "{same_letters[0]}"?'
                    if same_letters else did_you_mean(name, class_names)
                )
                raise ConfigError(
                    f"data.classes names {name!r}, which is not a class of this data set.{hint} "
                    f"Classes: {', '.join(class_names)}."
                )
            keep.append(class_names.index(name))
    remap = np.full(len(class_names), -1, np.int32)
    remap[keep] = np.arange(len(keep), dtype=np.int32)
    out = {}
    for key, split in splits.items():
        mask = np.isin(split.y, keep)
        sub = split.take(np.flatnonzero(mask))
        sub.y = remap[sub.y]
        out[key] = sub
    return out, [class_names[i] for i in keep]


def limit_per_class(split, limit, seed):
    """At most `limit` images of each class, chosen at random (seeded)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(split.y):
        idx = np.flatnonzero(split.y == c)
        keep.extend(rng.permutation(idx)[:limit])
    return split.take(np.sort(np.array(keep, dtype=np.int64)))


# Decoded images held at a time while computing channel statistics: the statistics' whole
# working memory is about 5x this (the uint8 chunk and its uint32 copy), whatever the image
# size or count (kerasclf.data.sizing counts it in the memory estimate).
STATS_CHUNK_BYTES = 16 * 2**20


def channel_sums(x, index=None):
    """(pixels per channel, per-channel sums, per-channel sums of squares), exact integers
    (uint64), over the images `index` of `x` (all when None), read a chunk of about
    STATS_CHUNK_BYTES at a time. `x`: an array or FileImages (only a chunk is decoded at once).

    Never the whole sample as floating point: converting 2,000 decoded Dogs vs Cats photos to
    float64 (twice, for the mean and the std) took 17 GB."""
    n = len(x) if index is None else len(index)
    channels = int(x.shape[-1])
    per_image = int(np.prod(x.shape[1:]))
    step = max(1, STATS_CHUNK_BYTES // max(per_image, 1))
    total = np.zeros(channels, np.uint64)
    squares = np.zeros(channels, np.uint64)
    for start in range(0, n, step):
        part = slice(start, start + step) if index is None else index[start:start + step]
        chunk = np.asarray(x[part]).reshape(-1, channels).astype(np.uint32)
        total += chunk.sum(0, dtype=np.uint64)
        squares += (chunk * chunk).sum(0, dtype=np.uint64)
    return n * (per_image // channels), total, squares


def mean_std(pixels, total, squares):
    """Per-channel mean and std (float64 arrays) from channel_sums' integers."""
    pixels = max(int(pixels), 1)
    mean = total.astype(np.float64) / pixels
    return mean, np.sqrt(np.maximum(squares.astype(np.float64) / pixels - mean**2, 0.0))


def channel_stats(x, max_images=10000, seed=0):
    """Per-channel mean and std in 0..255 units, over a seeded sample of at most `max_images`
    images (exact enough, bounded cost), a chunk at a time (channel_sums).

    `x`: an array, or FileImages (only the sample is decoded, a chunk at a time)."""
    index = None
    if len(x) > max_images:
        index = np.sort(np.random.default_rng(seed).choice(len(x), max_images, replace=False))
    mean, std = mean_std(*channel_sums(x, index))
    return mean.tolist(), np.maximum(std, 1e-3).tolist()
