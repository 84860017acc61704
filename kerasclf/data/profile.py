"""The numbers of a data report: class counts per split, per-channel statistics, image sizes
and exact duplicates between splits. Pure computation (no figures: see
kerasclf.evaluation.data_report); splits may be arrays or files still on disk (FileImages),
which are read a chunk at a time so that a large folder need not fit in memory.
"""

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kerasclf.data.geometry import exif_orientations
from kerasclf.data.images import image_size_of
from kerasclf.data.splits import channel_sums, mean_std

MAX_EXAMPLES = 10  # duplicate pairs named per pair of splits


def class_counts(split, num_classes):
    return np.bincount(split.y, minlength=num_classes).astype(int).tolist()


def channel_stats(x):
    """Exact per-channel mean and std over every pixel, in 0..255 units (integer sums, a
    chunk of decoded images at a time: kerasclf.data.splits.channel_sums)."""
    mean, std = mean_std(*channel_sums(x))
    return {"mean": mean.round(3).tolist(), "std": std.round(3).tolist()}


def image_sizes(split):
    """Counter of (height, width): for files, each file's own size from its header (nothing
    decoded); for arrays, the array's size."""
    if split.paths is None:
        return Counter({tuple(int(s) for s in split.x.shape[1:3]): len(split)})
    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(image_size_of, split.paths, chunksize=256))


def _hash_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def content_hashes(split):
    """One SHA-1 per image: of the file's bytes for files, of the pixels for arrays."""
    if split.paths is not None:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(_hash_file, split.paths, chunksize=256))
    return [hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() for image in split.x]


def _name(split, i):
    return split.paths[i] if split.paths is not None else f"#{i}"


def duplicates(splits):
    """Exact duplicates within each split and between each pair of splits.

    {"within": {split: count of images that repeat an earlier one}, "between": {"a/b":
    {"count": images of b whose content is also in a, "examples": [[a item, b item], ...]}}}
    """
    hashes = {name: content_hashes(split) for name, split in splits.items()}
    within = {name: len(h) - len(set(h)) for name, h in hashes.items()}
    between = {}
    names = list(splits)
    for i, first in enumerate(names):
        index = {}
        for k, digest in enumerate(hashes[first]):
            index.setdefault(digest, k)
        for second in names[i + 1:]:
            pairs = [(index[d], k) for k, d in enumerate(hashes[second]) if d in index]
            between[f"{first}/{second}"] = {
                "count": len(pairs),
                "examples": [[_name(splits[first], a), _name(splits[second], b)] for a, b in pairs[:MAX_EXAMPLES]],
            }
    return {"within": within, "between": between}


def size_summary(counter):
    heights = np.repeat([h for h, _ in counter], list(counter.values()))
    widths = np.repeat([w for _, w in counter], list(counter.values()))
    return {
        "distinct": len(counter),
        "most_common": [[h, w, n] for (h, w), n in counter.most_common(5)],
        "height": {"min": int(heights.min()), "median": float(np.median(heights)), "max": int(heights.max())},
        "width": {"min": int(widths.min()), "median": float(np.median(widths)), "max": int(widths.max())},
    }


def exif_turned(splits):
    """{split: files whose EXIF orientation turns or flips them} (both decoders apply it); {} for arrays."""
    return {name: sum(o != 1 for o in exif_orientations(s.paths)) for name, s in splits.items() if s.paths is not None}


def profile(dataset):
    """All the report's numbers for a built kerasclf Dataset (JSON-ready)."""
    splits = {name: s for name in ("train", "val", "test") if (s := dataset.split(name)) is not None and len(s)}
    names = dataset.info.class_names
    counts = {name: class_counts(s, len(names)) for name, s in splits.items()}
    sizes = {name: image_sizes(s) for name, s in splits.items()}
    return {
        "source": dataset.info.source,
        "class_names": list(names),
        "image_size_fed": list(dataset.info.image_size),
        "files": any(s.paths is not None for s in splits.values()),
        "counts": counts,
        "total_per_class": [int(sum(c[k] for c in counts.values())) for k in range(len(names))],
        "sizes": {name: len(s) for name, s in splits.items()},
        "channel_stats": {name: channel_stats(s.x) for name, s in splits.items()},
        "image_sizes": {name: size_summary(c) for name, c in sizes.items()},
        "image_size_counts": {name: [[h, w, n] for (h, w), n in sorted(c.items())] for name, c in sizes.items()},
        "duplicates": duplicates(splits),
        "exif_turned": exif_turned(splits),
        "notes": {k: v for k, v in dataset.notes.items() if k != "streamed"},
    }
