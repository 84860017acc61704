"""Run directories: <log_dir>/<name>-<timestamp>/ (name: the config's `name`, else <dataset>-<model>)."""

import itertools
import os
import re
import time
from pathlib import Path

from kerasclf.errors import ConfigError


def dataset_slug(source):
    if source.startswith("folder:"):
        return "folder-" + Path(source[len("folder:"):].rstrip("/")).name
    return source


def make_run_dir(log_dir, experiment, source, model, run_name=None):
    """A new, empty directory <log_dir>/<name>[-N]: never one another run has.

    mkdir without exist_ok is the atomic test: of two runs started at once with the same
    name (or in the same second), exactly one creates <name>; the other moves on to <name>-2.
    """
    stem = experiment or f"{dataset_slug(source)}-{model}"
    name = run_name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    root = Path(log_dir)
    root.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = root / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def lock_run_dir(path):
    """Hold an exclusive lock on <run>/.lock while this process lives (the OS drops it on exit,
    kill -9 included), so that no two processes ever train into one run directory.
    Returns the open lock file (keep a reference), or None where fcntl does not exist (Windows)."""
    try:
        import fcntl  # lazy: POSIX only
    except ImportError:
        return None
    lock = open(Path(path) / ".lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        pid = lock.read().strip() or "unknown"
        lock.close()
        raise ConfigError(
            f"The run directory {str(path)!r} is in use by another kerasclf process (pid {pid}). "
            "Wait for it to finish or stop it (Ctrl-C / kill PID), then resume; or start a new run."
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def unlock_run_dir(lock):
    """Release a lock from lock_run_dir (None: nothing held)."""
    if lock is not None and not lock.closed:
        lock.close()  # closing the file drops its flock
