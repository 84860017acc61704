"""scikit-learn's 8x8 digits, upscaled to 32x32 RGB: the offline demo data set."""

import numpy as np
from sklearn.datasets import load_digits

from kerasclf.data.images import resize_array
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split, stratified_split


@register_dataset("digits", description="scikit-learn 8x8 digits upscaled to 32x32x3, 10 classes, offline (1437/360)")
def digits(cfg, cache_dir):

    bunch = load_digits()
    x = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[..., None]
    x = np.repeat(resize_array(x, (32, 32)), 3, axis=-1)
    pool = Split(x, bunch.target.astype(np.int32))
    # A fixed 20% test split (seed 0), so test figures are comparable across runs and seeds.
    train, test = stratified_split(pool, 0.2, seed=0)
    return RawDataset({"train": train, "test": test}, [str(d) for d in range(10)])
