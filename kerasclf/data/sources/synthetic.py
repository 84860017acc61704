"""A small, learnable synthetic data set for tests: each class is a coloured square at its own place."""

import numpy as np

from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split

_NUM_CLASSES, _SIZE, _TRAIN, _TEST = 4, 32, 400, 100


def make_synthetic(n, num_classes=_NUM_CLASSES, size=_SIZE, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int32) % num_classes
    x = rng.integers(0, 80, size=(n, size, size, 3), dtype=np.uint8)
    side = size // 4
    for c in range(num_classes):
        row, col = divmod(c, 3)
        r0, c0 = (row * side + 2) % (size - side), (col * side + 2) % (size - side)
        x[y == c, r0 : r0 + side, c0 : c0 + side, c % 3] = 230
    return Split(x, y)


@register_dataset("synthetic", description=f"{_NUM_CLASSES} classes of coloured squares, {_SIZE}x{_SIZE}, for tests")
def synthetic(cfg, cache_dir):
    return RawDataset(
        {"train": make_synthetic(_TRAIN, seed=1), "test": make_synthetic(_TEST, seed=2)},
        [f"class{c}" for c in range(_NUM_CLASSES)],
    )
