"""Run directories: <log_dir>/<name>-<timestamp>/ (name: the config's `name`, else <dataset>-<model>)."""

import re
import time
from pathlib import Path


def dataset_slug(source):
    if source.startswith("folder:"):
        return "folder-" + Path(source[len("folder:"):].rstrip("/")).name
    return source


def make_run_dir(log_dir, experiment, source, model, run_name=None):
    stem = experiment or f"{dataset_slug(source)}-{model}"
    name = run_name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    base = Path(log_dir) / name
    path, n = base, 1
    while path.exists():  # two runs in the same second, or a reused run_name: never overwrite
        n += 1
        path = base.with_name(f"{name}-{n}")
    path.mkdir(parents=True)
    return path
