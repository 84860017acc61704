"""A cache of decoded images, so that a second run on the same folder does not decode it again.

Decoding 60,000 CIFAR JPEGs takes minutes on 2 cores; loading the decoded array takes about a
second. One entry per (files' folder, image size, resize policy, decoder), stored under
<data cache>/decoded/ (beside the downloaded data sets, kerasclf.data.cache.cache_dir), as one
.npz holding the uint8 images, which files decoded, and a fingerprint of the files: every
path with its size and modification time. An entry whose fingerprint differs from the files
now (one added, removed, rewritten or touched) is stale: it is not used, and the images are
decoded again and the entry replaced. Entries are written to a temporary file and renamed
into place, so concurrent runs never read a half-written entry (the last rename wins; both
writers wrote the same images). A cache that cannot be written (full disk, read-only
folder) is skipped with a note; the run goes on.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from kerasclf.console import display

FORMAT = 1  # raise when decoding changes the pixels a file gives
log = logging.getLogger("kerasclf")


def fingerprint(paths):
    """SHA-256 over every path with its size and mtime; None when a file cannot be stat'ed."""
    h = hashlib.sha256()
    try:
        for p in paths:
            st = os.stat(p)
            h.update(os.fsencode(os.path.abspath(p)) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return h.hexdigest()


def entry_path(root, paths, size, policy, decoder):
    """The entry's file: one per folder of the files, image size, resize policy and decoder."""
    folder = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else ""
    key = json.dumps([FORMAT, folder, list(size), policy, decoder])
    return Path(root) / "decoded" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def load(path, stamp):
    """(images, kept, skipped) from the entry when its fingerprint is `stamp`, else None (missing
    or stale); `skipped`: the messages of the files that did not decode, to be said again."""
    if stamp is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT or meta.get("fingerprint") != stamp:
                log.info("the decoded-image cache %s is stale (the files changed since it was written): "
                         "decoding again", display(path))
                return None
            return npz["x"], npz["kept"].tolist(), list(meta.get("skipped", []))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        log.info("the decoded-image cache %s cannot be read (%s): decoding again", display(path), type(exc).__name__)
        return None


def store(path, stamp, x, kept, skipped=()):
    """Write the entry atomically (temporary file, then rename); a failure is a note, not an error."""
    if stamp is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)

        if shutil.disk_usage(path.parent).free < 2 * x.nbytes + 2**28:
            log.info("not caching the decoded images: too little free space in %s", display(path.parent))
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            meta = json.dumps({"format": FORMAT, "fingerprint": stamp, "shape": list(x.shape), "skipped": list(skipped)})
            np.savez(f, x=x, kept=np.asarray(kept, np.int64), meta=np.array(meta))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.info("not caching the decoded images in %s (%s)", display(path.parent), exc)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
