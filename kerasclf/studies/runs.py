"""Reading run directories back: which paths are runs, whether a run finished, what it logged.

A run directory is what `kerasclf train` writes (config.yaml, history.csv, metrics.json, ...).
A study directory (what `kerasclf sweep` writes) holds run directories one level down.
Nothing here imports training code: run directories are read as files.
"""

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kerasclf.config import parse_yaml, without_retired_keys
from kerasclf.errors import ConfigError

RUN_MARKERS = ("metrics.json", "config.yaml", "error.txt")  # any one: a run (finished, unfinished or failed)
ERROR_FILE = "error.txt"  # written by the sweep when a run's process failed


def read_metrics(run_dir):
    """metrics.json as a dict, or None when absent, partly written or not a JSON object."""
    path = Path(run_dir) / "metrics.json"
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def run_state(run_dir):
    """'finished' | 'failed' | 'unfinished' | 'missing'.

    Finished means metrics.json is there, is valid JSON and the run was not interrupted:
    train() writes it once every epoch has ended, so a process killed earlier leaves none.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return "missing"
    metrics = read_metrics(run_dir)
    if metrics is not None and not metrics.get("interrupted"):
        return "finished"
    if (run_dir / ERROR_FILE).is_file():
        return "failed"
    return "unfinished"


def is_run_dir(path):
    return Path(path).is_dir() and any((Path(path) / m).is_file() for m in RUN_MARKERS)


@dataclass
class Run:
    """What comparing runs needs from one run directory."""

    path: Path
    name: str
    state: str
    config: dict = field(default_factory=dict)  # config.yaml, as written
    metrics: dict = field(default_factory=dict)
    error: str = ""

    @property
    def history_csv(self):
        path = self.path / "history.csv"
        return path if path.is_file() else None


def load_run(path, name=None):
    path = Path(path)
    config = {}
    if (path / "config.yaml").is_file():
        try:
            config = without_retired_keys(parse_yaml((path / "config.yaml").read_text(encoding="utf-8")) or {})
        except (UnicodeDecodeError, yaml.YAMLError):
            config = {}
    error = ""
    if (path / ERROR_FILE).is_file():
        error = (path / ERROR_FILE).read_text().strip().splitlines()[0:1]
        error = error[0] if error else "failed"
    return Run(path, name or path.name, run_state(path), config, read_metrics(path) or {}, error)


def find_runs(patterns):
    """Run directories from paths and glob patterns; a study directory gives its runs.

    Returns (run directories, skipped): skipped names the paths that are neither. A pattern
    or path that matches nothing, or no run at all, is a ConfigError.
    """
    found, skipped = [], []
    for pattern in patterns:
        pattern = str(pattern)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).exists()]
        if glob.has_magic(pattern):  # logs/* also matches logs/README.md, comparison.csv, ...: files are not runs
            matches = [m for m in matches if Path(m).is_dir()] or matches
        if not matches:
            raise ConfigError(
                f"{pattern!r} matches no file or directory. Pass run directories (logs/<run>/) or "
                "study directories (logs/<study>/), or a glob of them such as 'logs/cifar10-*'."
            )
        for match in matches:
            path = Path(match)
            if is_run_dir(path):
                found.append(path)
                continue
            children = sorted(p for p in path.iterdir() if is_run_dir(p)) if path.is_dir() else []
            if children:
                found.extend(children)
            else:
                skipped.append(match)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ConfigError(
            f"No run directories in {', '.join(map(str, patterns))}. A run directory holds the "
            "metrics.json and config.yaml that `kerasclf train` writes; a study directory holds runs."
        )
    return unique, skipped


def run_labels(paths):
    """Unique, short labels: the directory name, with its parent when names repeat."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def flatten(config, prefix=""):
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}; lists stay values."""
    out = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
