"""`kerasclf sweep`: the runs of a grid (or a list of named runs) in one study directory.

    logs/<study>/study.yaml    what was asked: base config, grid/runs, overrides, each run's --set
    logs/<study>/base.yaml     the base config every run starts from
    logs/<study>/<run>/        a normal run directory per grid point (+ train.log, error.txt on failure)
    logs/<study>/comparison.*  the comparison of the runs (kerasclf compare), rewritten at the end

Each run is its own `python -m kerasclf.cli train` process. Why not in-process: Keras keeps
global state between runs (the mixed-precision policy, the random seed, compiled functions,
memory held by the backend), a crash or out-of-memory in one run must not end the others,
and processes give --parallel for free. The cost is the process start (importing
TensorFlow), measured in docs/performance.md.

Re-running the same command skips the finished runs (metrics.json present, valid and not
interrupted) and re-does the others; a finished run whose config differs from the plan is an
error instead of a silent mix of two studies.
"""

import copy
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import kerasclf
from kerasclf.config import (
    apply_overrides,
    from_dict,
    parse_yaml,
    read_config_file,
    read_yaml_mapping,
    to_dict,
    without_retired_keys,
)
from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.studies.compare import IGNORED_KEYS, write_comparison
from kerasclf.studies.runs import ERROR_FILE, flatten, read_metrics, run_state

RESERVED_KEYS = ("train.log_dir", "train.run_name")  # the sweep sets these for every run
STUDY_FILE_KEYS = ("name", "config", "base", "set", "grid", "runs")
LOG_FILE = "train.log"
EPOCH_LINE = re.compile(r"^Epoch \d+/\d+: ")  # training/progress.EpochLine, the child's console (not a terminal)


@dataclass
class Point:
    """One run of the study: its directory name and its `--set` overrides (key, YAML text)."""

    name: str
    overrides: list = field(default_factory=list)

    @property
    def texts(self):
        return [f"{k}={v}" for k, v in self.overrides]


@dataclass
class Plan:
    name: str
    study_dir: Path
    base: dict  # raw base config (config file + study base + --set), before each point's overrides
    points: list
    description: dict  # what study.yaml records
    data_dir: str = None


# --- parsing ------------------------------------------------------------------------------

def split_values(text):
    """'a,[1,2],b' -> ['a', '[1,2]', 'b']: commas inside brackets, braces or quotes do not split."""
    values, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_grid(texts):
    """['optim.name=sgd,adam', ...] -> {'optim.name': ['sgd', 'adam'], ...} (values as YAML text)."""
    grid = {}
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--grid expects KEY=VALUE1,VALUE2,... (for example optim.name=sgd,adam), got {text!r}."
            )
        parsed = split_values(values)
        if any(v == "" for v in parsed):
            raise ConfigError(f"--grid {text!r} has an empty value; separate values with single commas.")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; put all its values in one --grid {key}=v1,v2,...")
        grid[key] = parsed
    return grid


def _yaml_text(value):
    """A YAML value as --set text that parses back to the same value."""
    if isinstance(value, str) and _parses_to_itself(value) and "," not in value:
        return value
    return json.dumps(value)


def _parses_to_itself(text):
    try:
        return parse_yaml(text) == text
    except yaml.YAMLError:
        return False


def _slug(text):
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-") or "x"


def _label(key):
    """optim.name -> 'optim', data.batch_size -> 'batch_size': the shortest part that says which key."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def point_names(keys, combos):
    """Run names from the varying values: 'optim-sgd_batch_size-64' (full keys when labels clash)."""
    leaves = [_label(k) for k in keys]
    labels = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves)]
    names = []
    for combo in combos:
        name = "_".join(f"{_slug(label)}-{_slug(v)}" for label, v in zip(labels, combo)) or "run"
        base, n = name, 1
        while name in names:  # two value texts with the same slug ('[8]' and '8')
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def load_study_file(path):
    raw = read_yaml_mapping(path, "Study file", "configs/studies/<name>.yaml")
    for key in raw:
        if key not in STUDY_FILE_KEYS:
            raise ConfigError(
                f"Unknown key {key!r} in study file {str(path)!r}.{did_you_mean(key, STUDY_FILE_KEYS)} "
                f"Valid keys: {', '.join(STUDY_FILE_KEYS)}."
            )
    for key, kind in (("base", dict), ("grid", dict), ("runs", dict), ("set", list)):
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            raise ConfigError(f"Study file {str(path)!r}: '{key}' must be a {'mapping' if kind is dict else 'list'}.")
    return raw


def _deep_merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def plan_sweep(config=None, grid=(), sets=(), name=None, study=None, data_dir=None):
    """Check everything that can be checked before a run starts; return the Plan.

    config: base config path; grid: --grid texts; sets: --set texts common to every run;
    study: a study file (configs/studies/*.yaml) with name/config/base/set/grid/runs.
    """
    spec = load_study_file(study) if study else {}
    config = config or spec.get("config")
    raw = read_config_file(config) if config else {}
    raw = _deep_merge(raw, spec.get("base"))
    common = [str(s) for s in spec.get("set") or []] + list(sets)
    raw = apply_overrides(raw, common)

    axes = {k: [_yaml_text(v) for v in (vs if isinstance(vs, list) else split_values(str(vs)))]
            for k, vs in (spec.get("grid") or {}).items()}
    for key, values in parse_grid(grid).items():
        if key in axes:
            raise ConfigError(f"--grid {key} is also in the study file's grid; give it in one place.")
        axes[key] = values
    named = spec.get("runs") or {}
    for key in [*axes, *(k for r in named.values() for k in (r or {}))]:
        if key in RESERVED_KEYS:
            raise ConfigError(f"{key} cannot vary in a sweep: the sweep puts every run in <log_dir>/<study>/<run>/.")
        if any(s.split("=", 1)[0].strip() == key for s in common):
            raise ConfigError(f"{key} is both set (--set/set:) and varied (grid/runs); drop one of them.")
    if not axes and not named:
        raise ConfigError("Nothing to sweep: give --grid KEY=V1,V2 (repeatable), or a study file with grid: or runs:.")

    keys = list(axes)
    combos = list(itertools.product(*axes.values()))
    grid_points = [Point(n, list(zip(keys, c))) for n, c in zip(point_names(keys, combos), combos)]
    if named:
        points = []
        for run_name, values in named.items():
            if not isinstance(values, dict):
                raise ConfigError(f"runs.{run_name} must be a mapping of config keys to values, got {values!r}.")
            own = [(k, _yaml_text(v)) for k, v in values.items()]
            for gp in grid_points if axes else [Point("", [])]:
                points.append(Point(_slug(run_name) + (f"_{gp.name}" if gp.name else ""), own + gp.overrides))
    else:
        points = grid_points

    if (raw.get("train") or {}).get("verbose", "auto") == "auto":
        raw = apply_overrides(raw, ["train.verbose=2"])  # one line per epoch in train.log, no progress bars
    base_cfg = _validated(raw, [], "the base config")
    study_name = _slug(name or spec.get("name") or _default_name(config, raw, keys or list(named)))
    study_dir = Path(base_cfg.train.log_dir) / study_name
    for point in points:
        _validated(raw, point.texts, f"run {point.name!r}")
    description = {
        "name": study_name,
        "config": str(config) if config else None,
        "study_file": str(study) if study else None,
        "set": common,
        "grid": {k: list(v) for k, v in axes.items()},
        "runs": {p.name: p.texts for p in points},
    }
    return Plan(study_name, study_dir, raw, points, description, data_dir)


def _validated(raw, overrides, where):
    try:
        return from_dict(apply_overrides(copy.deepcopy(raw), overrides))
    except ConfigError as exc:
        raise ConfigError(f"Sweep, {where}: {exc}") from None


def _default_name(config, raw, keys):
    stem = raw.get("name") or (Path(config).stem if config else "sweep")
    return f"{stem}-" + "-".join(_label(k) for k in keys)


# --- running ------------------------------------------------------------------------------

def planned_config(plan, point):
    return to_dict(from_dict(apply_overrides(copy.deepcopy(plan.base), [*point.texts, *_placement(plan, point)])))


def _placement(plan, point):
    # JSON strings are YAML strings: a path with ':' or '#' stays one value
    return [f"train.log_dir={json.dumps(str(plan.study_dir))}", f"train.run_name={json.dumps(point.name)}"]


def _config_differences(run_dir, expected):
    try:
        written = parse_yaml((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ["config.yaml unreadable"]
    a, b = flatten(without_retired_keys(written)), flatten(expected)
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} planned" for k in sorted(set(a) | set(b))
            if k not in IGNORED_KEYS and a.get(k) != b.get(k)]


def states(plan):
    return {p.name: run_state(plan.study_dir / p.name) for p in plan.points}


def _check_finished_match_plan(plan, current):
    for point in plan.points:
        if current[point.name] != "finished":
            continue
        diffs = _config_differences(plan.study_dir / point.name, planned_config(plan, point))
        if diffs:
            raise ConfigError(
                f"{plan.study_dir / point.name} is a finished run of another configuration "
                f"({'; '.join(diffs[:3])}). A re-run of a sweep must ask for the same runs: pass --name "
                "to start a new study, or delete that directory to redo it."
            )


def train_command(plan, point):
    cmd = [sys.executable, "-m", "kerasclf.cli", "train", "--config", str(plan.study_dir / "base.yaml")]
    for text in [*point.texts, *_placement(plan, point)]:
        cmd += ["--set", text]
    if plan.data_dir:
        cmd += ["--data-dir", str(plan.data_dir)]
    return cmd


def _child_env():
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the child imports the same kerasclf as this process (a checkout, not another install)
    root = str(Path(kerasclf.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def error_summary(log_text, returncode):
    """The line that says what went wrong: the CLI's 'Error: ...', else the exception line."""
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: "):]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line):
            return line
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}" + (f": {lines[-1]}" if lines else "")


class _Runner:
    """Runs points as child processes, `parallel` at a time; stops them all on Ctrl-C."""

    poll_seconds = 1.0

    def __init__(self, plan, parallel, echo):
        self.plan, self.parallel, self.echo = plan, parallel, echo
        self.procs, self.lock, self.stopping = set(), threading.Lock(), False

    def run_point(self, point):
        run_dir = self.plan.study_dir / point.name
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished or failed attempt: redone from scratch
        log_path = self.plan.study_dir / f".{point.name}.log"
        started = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(train_command(self.plan, point), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=_child_env())
            with self.lock:
                self.procs.add(proc)
            returncode = self._follow(proc, log_path, point.name)
            with self.lock:
                self.procs.discard(proc)
        seconds = time.perf_counter() - started
        run_dir.mkdir(parents=True, exist_ok=True)  # a run that failed before making its directory
        text = log_path.read_text(errors="replace")
        shutil.move(str(log_path), run_dir / LOG_FILE)
        state = run_state(run_dir)
        if returncode != 0 or state != "finished":
            error = error_summary(text, returncode)
            tail = "\n".join(text.splitlines()[-40:])
            (run_dir / ERROR_FILE).write_text(
                f"{error}\n\n{' '.join(train_command(self.plan, point))}\nexit code {returncode}\n\n"
                f"--- last lines of {LOG_FILE} ---\n{tail}\n"
            )
            return point, "failed", error, seconds
        return point, "finished", "", seconds

    def _follow(self, proc, log_path, name):
        """Wait for the run's process, echoing each epoch line of its log as "<run>: Epoch i/n: ..."."""
        position = 0
        while True:
            returncode = proc.poll()
            with open(log_path, "rb") as f:
                f.seek(position)
                data = f.read()
            if returncode is None:
                data = data[: data.rfind(b"\n") + 1]  # whole lines only while the run writes
            position += len(data)
            for line in data.decode("utf-8", "replace").splitlines():
                if EPOCH_LINE.match(line):
                    self.echo(f"  {name}: {line.strip()}")
            if returncode is not None:
                return returncode
            time.sleep(self.poll_seconds)

    def stop(self):
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def run(self, points):
        results = []
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            futures = [pool.submit(self.run_point, p) for p in points]
            try:
                for i, future in enumerate(as_completed(futures), start=1):
                    point, state, error, seconds = future.result()
                    results.append((point, state, error, seconds))
                    self.echo(_progress_line(self.plan, point, state, error, seconds, i, len(points)))
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                self.stop()
                raise
        return results


def _progress_line(plan, point, state, error, seconds, i, n):
    """The run's result; "process N s" is the whole child process (start, data, training,
    evaluation), "training N s" metrics.json's wall_seconds (the epochs, compiling included)."""
    head = f"[{i}/{n}] {point.name}: {state}, process {seconds:.0f} s"
    if state != "finished":
        return f"{head} -- {error} (see {plan.study_dir / point.name / ERROR_FILE})"
    m = read_metrics(plan.study_dir / point.name) or {}
    names = {"best_val_accuracy": "best val acc", "test_accuracy": "test acc"}
    parts = [f"{names[k]} {100 * m[k]:.2f}%" for k in names if m.get(k) is not None]
    if m.get("wall_seconds") is not None:
        parts.append(f"training {m['wall_seconds']:.1f} s")
    if m.get("steady_seconds_per_epoch") is not None:
        parts.append(f"steady {m['steady_seconds_per_epoch']:.2f} s/epoch after a first epoch of {m['first_epoch_seconds']:.1f} s")
    return head + (f" -- {', '.join(parts)}" if parts else "")


def write_study_files(plan, argv=None):
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    (plan.study_dir / "base.yaml").write_text(yaml.safe_dump(plan.base, sort_keys=False))
    description = dict(plan.description)
    if argv:
        description["command"] = " ".join(argv)
    (plan.study_dir / "study.yaml").write_text(yaml.safe_dump(description, sort_keys=False))


def run_sweep(plan, parallel=1, echo=print, argv=None, compare=True):
    """Run the plan's missing runs; write the comparison. Returns {run name: state}."""
    if parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {parallel}.")
    current = states(plan) if plan.study_dir.is_dir() else {p.name: "missing" for p in plan.points}
    _check_finished_match_plan(plan, current)
    write_study_files(plan, argv)
    todo = [p for p in plan.points if current[p.name] != "finished"]
    done = len(plan.points) - len(todo)
    echo(f"Study {plan.study_dir}: {len(plan.points)} runs, {done} finished earlier, {len(todo)} to run"
         + (f", {parallel} at a time" if parallel > 1 and todo else ""))
    try:
        _Runner(plan, parallel, echo).run(todo)
    except KeyboardInterrupt:
        echo(f"Sweep interrupted; run the same command again to finish the missing runs of {plan.study_dir}.")
        raise
    final = states(plan)
    if compare:
        paths = write_comparison([plan.study_dir / p.name for p in plan.points], plan.study_dir)
        echo(f"Comparison: {paths['markdown']}")
    return final
