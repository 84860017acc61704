"""Read a PyTorch state-dict file (`torch.save`) into numpy arrays, without torch.

Both formats torch writes are read: the legacy one (a run of pickles followed by the raw
storages) and the zip one (data.pkl + data/<key>). The pickles go through a restricted
unpickler that resolves only what a state dict of tensors needs (OrderedDict, the tensor
rebuild functions, the typed storage classes); any other global in the file is refused, so
reading a file can never run code from it.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = int(offset), tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _TensorRef(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Resolves only OrderedDict, torch's tensor rebuild functions and typed storages."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only tensors are read from weight files")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, size[, view metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return (str(pid[2]), pid[1])


def read_state_dict(path):
    """{name: numpy array} of a torch state-dict file (legacy or zip format)."""
    with open(path, "rb") as f:
        data = f.read()
    if zipfile.is_zipfile(io.BytesIO(data)):
        return _read_zip(data)
    return _read_legacy(io.BytesIO(data))


def _read_legacy(f):
    if pickle.load(f) != _LEGACY_MAGIC:  # magic number, protocol version, system info
        raise ValueError("not a torch state-dict file (bad magic number)")
    pickle.load(f)
    pickle.load(f)
    refs = _Unpickler(f).load()
    keys = pickle.load(f)
    storages = {}
    for key in keys:
        dtype = next(r.dtype for r in _refs(refs) if r.key == key)
        (count,) = struct.unpack("<q", f.read(8))
        storages[key] = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype=dtype)
    return _materialise(refs, storages)


def _read_zip(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        refs = _Unpickler(io.BytesIO(archive.read(pkl))).load()
        storages = {r.key: np.frombuffer(archive.read(f"{prefix}data/{r.key}"), dtype=r.dtype) for r in _refs(refs)}
    return _materialise(refs, storages)


def _refs(tree):
    return [v for v in tree.values() if isinstance(v, _TensorRef)]


def _materialise(tree, storages):
    out = {}
    for name, ref in tree.items():
        if not isinstance(ref, _TensorRef):
            continue  # e.g. num_batches_tracked stored as a plain int in old files
        flat = storages[ref.key]
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride)
        )
        out[name] = np.array(view, copy=True)
    return out
