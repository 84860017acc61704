"""CIFAR-10 / CIFAR-100 from the official python archives (downloaded once into the cache).

The archive is read in place (tarfile + pickle) rather than extracted: one file on disk.
"""

import pickle
import tarfile

import numpy as np

from kerasclf.data.cache import fetch
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

_URL = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES = {
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}


def _load_pickle(tar, member):
    with tar.extractfile(member) as f:
        return pickle.load(f, encoding="bytes")


def _to_split(batches, label_key):
    x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.concatenate([np.asarray(b[label_key]) for b in batches]).astype(np.int32)
    return Split(np.ascontiguousarray(x, dtype=np.uint8), y)


def read_cifar_archive(path, name):
    """(train, test, class_names) from a cifar-10/100-python.tar.gz file."""
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name.split("/")[-1]: m for m in tar.getmembers() if m.isfile()}
        if name == "cifar10":
            meta = _load_pickle(tar, members["batches.meta"])
            names = [n.decode() for n in meta[b"label_names"]]
            train = [_load_pickle(tar, members[f"data_batch_{i}"]) for i in range(1, 6)]
            test = [_load_pickle(tar, members["test_batch"])]
            key = b"labels"
        else:
            meta = _load_pickle(tar, members["meta"])
            names = [n.decode() for n in meta[b"fine_label_names"]]
            train, test, key = [_load_pickle(tar, members["train"])], [_load_pickle(tar, members["test"])], b"fine_labels"
    return _to_split(train, key), _to_split(test, key), names


def _loader(name):
    filename, md5 = ARCHIVES[name]

    def load(cfg, cache_dir):
        path = fetch(_URL + filename, cache_dir, filename, md5=md5, what=f"{name} ({filename})")
        try:
            train, test, names = read_cifar_archive(path, name)
        except (tarfile.TarError, EOFError, OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
            raise DataError(
                f"{path} is not a readable {name} archive ({type(exc).__name__}: {exc}). It may be truncated "
                f"or another file: delete it to download it again from {_URL + filename}."
            ) from None
        return RawDataset({"train": train, "test": test}, names)

    return load


register_dataset("cifar10", description="CIFAR-10, 50k/10k 32x32, 10 classes (downloads ~163 MB once)")(_loader("cifar10"))
register_dataset("cifar100", description="CIFAR-100, 50k/10k 32x32, 100 fine classes (downloads ~161 MB once)")(_loader("cifar100"))
