"""SVHN, cropped digits: 73,257 train / 26,032 test (and 531,131 extra) 32x32 colour images.

Not the tensorflow-datasets `svhn_cropped` builder: it always downloads and prepares the
1.3 GB `extra` split and needs TensorFlow; here `extra` is fetched only when
data.svhn_extra is set, and it works on every backend. The official MATLAB files are
downloaded once into the cache and read with scipy.io.loadmat.

Format (*_32x32.mat): X is uint8 (32, 32, 3, N); y is (N, 1) with labels 1..10, where
10 stands for the digit 0: it becomes class "0", so class i is the digit i.
"""

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from kerasclf.data.cache import fetch
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

URL = "http://ufldl.stanford.edu/housenumbers/"
# sha256 digests as tensorflow-datasets lists them
FILES = {
    "train": ("train_32x32.mat", "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
    "test": ("test_32x32.mat", "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
    "extra": ("extra_32x32.mat", "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3"),
}
CLASS_NAMES = [str(d) for d in range(10)]


def read_mat(path):
    """Split of (N, 32, 32, 3) uint8 images and 0..9 digit labels from an SVHN .mat file."""
    mat = loadmat(path, variable_names=["X", "y"])
    x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(f"X has shape {x.shape} and y {len(y)} labels; expected (32, 32, 3, N) and N")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"labels from {y.min()} to {y.max()}; expected 1..10")
    return Split(np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.uint8), (y % 10).astype(np.int32))


def _read(name, cache_dir):
    filename, sha256 = FILES[name]
    path = fetch(URL + filename, cache_dir, filename, sha256=sha256, what=f"svhn {name} ({filename})")
    try:
        return read_mat(path)
    except Exception as exc:  # scipy raises MatReadError, IndexError, ValueError, ... on a broken file
        raise DataError(
            f"{path} is not a readable SVHN file ({type(exc).__name__}: {exc}). It may be truncated or "
            f"another file: delete it to download it again from {URL + filename}."
        ) from None


@register_dataset(
    "svhn",
    description="SVHN cropped digits, 73k/26k 32x32, classes 0-9 (downloads 250 MB once; data.svhn_extra adds 531k)",
    options={"svhn_extra": (False, 'add the 531,131 "extra" images to train (downloads 1.3 GB)')},
)
def load_svhn(cfg, cache_dir):
    cache_dir = Path(cache_dir) / "svhn"
    train, test = _read("train", cache_dir), _read("test", cache_dir)
    if cfg.options.get("svhn_extra", False):
        extra = _read("extra", cache_dir)
        train = Split(np.concatenate([train.x, extra.x]), np.concatenate([train.y, extra.y]))
    return RawDataset({"train": train, "test": test}, CLASS_NAMES)
