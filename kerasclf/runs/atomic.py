"""Atomic file writes: a reader, a crash or a `kill -9` sees the previous file or the new one, never half of one.

Every run artefact (checkpoints, history.csv, metrics.json, config.yaml, reports, the
resume state) is written through here: into a temporary file in the same folder, flushed,
fsync'ed, then `os.replace`d over the target and the folder fsync'ed. `os.replace` is
atomic within one file system, which is why the temporary file sits beside its target.

A full disk or quota (ENOSPC / EDQUOT) becomes a StorageError naming the file; the
temporary file is removed and the previous version of the file stays as it was.

This sits beside errors.py (the bottom layer) because config.py writes through it too.
"""

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from kerasclf.errors import StorageError

TMP_PREFIX = ".tmp-"  # temporary files of interrupted writes; remove_stale_temps() deletes them
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; artefacts get the permissions a plain open() would give them.
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, so writers that pick a format by
    extension still work: model.save, savefig); when the block ends without error it
    replaces `path`. On any error the temporary file is deleted and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = path.name.partition(".")  # all suffixes: Keras wants "x.weights.h5", not "x.h5"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{stem}-", suffix=dot + suffix, dir=path.parent)
    except OSError as exc:
        error = _storage_error(exc, path)
        if error is None:
            raise
        raise error from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        _remove(tmp)
        error = _storage_error(exc, path)
        if error is not None:
            raise error from None
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """open() for writing whose result appears at `path` only when the block finishes."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


def write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_bytes(path, data):
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path, obj, **dumps_kwargs):
    dumps_kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(obj, **dumps_kwargs) + "\n")


def remove_stale_temps(folder):
    """Delete temporary files that killed writers left under `folder`; returns their paths."""
    stale = [p for p in Path(folder).rglob(f"{TMP_PREFIX}*") if p.is_file()]
    for p in stale:
        _remove(p)
    return stale


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder):
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _storage_error(exc, path):
    """A StorageError when `exc` (or an error it wraps: Keras and h5py re-raise) is a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            previous = (f"the previous version of {Path(path).name!r} is intact" if Path(path).exists()
                        else f"there was no earlier {Path(path).name!r}")
            return StorageError(
                f"No space left on the disk (or quota) while writing {str(path)!r}. Nothing half-written was "
                f"left and {previous}. Free space on the disk that holds {str(Path(path).parent)!r}, or write "
                "somewhere else (train.log_dir for a training run, --out for `kerasclf evaluate` and "
                "`kerasclf data-report`), and run the command again."
            )
        exc = exc.__cause__ or exc.__context__
    return None
