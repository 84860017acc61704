"""Can we write there? Asked before any data is loaded, so a bad log_dir / --out fails in a second.

`os.access` is not enough: it says yes to root on a read-only mount or a chmod 555 folder
seen through a user namespace. So the nearest existing folder gets a real probe: a temporary
file created and removed. Nothing is left behind, and the folder itself is not created.
"""

import os
import shutil
import tempfile
from pathlib import Path

from kerasclf.console import display
from kerasclf.errors import ConfigError, StorageError

# Below this much free space a run cannot be expected to write its first checkpoint.
MIN_FREE_BYTES = 64 * 2**20


def _nearest_existing(path):
    probe = Path(path).expanduser()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def check_free_space(path, what, need=MIN_FREE_BYTES):
    """Refuse, before any data is read, a folder whose disk is (nearly) full: a run would build
    data and model first and then fail on its first file."""
    probe = _nearest_existing(path)
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < need:
        raise StorageError(
            f"The disk that holds {what} {display(path)!r} is full ({free / 2**20:.0f} MiB free; a run needs at "
            f"least {need / 2**20:.0f} MiB for its checkpoints and logs). Free space there, or set {what} to a "
            "folder on another disk."
        )


def unwritable_reason(path):
    """None when a folder can be made at `path` and written into; else why not (one phrase)."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():  # the nearest existing ancestor decides
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{display(probe)!r} is a file, not a folder"
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".kerasclf-write-test-")
    except OSError as exc:
        return f"{display(probe)!r} is not writable ({exc.strerror or type(exc).__name__})"
    os.close(fd)
    os.remove(name)
    return None


def check_writable(path, what, hint):
    """Raise a ConfigError naming `what` (e.g. "train.log_dir") when `path` cannot be written."""
    reason = unwritable_reason(path)
    if reason is not None:
        raise ConfigError(f"{what} {display(path)!r} cannot be used: {reason}. {hint}")
