"""`kerasclf sweep --launcher slurm`: a study as a Slurm job array, one run per array task.

Users with a cluster already have a scheduler; kerasclf writes what it needs and hands over:

    <study>/slurm/tasks.json     the runs this submission covers (the missing ones), in array order
    <study>/slurm/sweep.sbatch   #SBATCH --array=0-(N-1) + resources, each task runs
                                 `kerasclf sweep-task <study> $SLURM_ARRAY_TASK_ID`
    <study>/slurm/<job>_<task>.out  each task's console

Each task trains one run exactly as a local sweep does (same run directory, train.log,
error.txt on failure), so `kerasclf compare <study>` reads the result unchanged. Submitting
again writes a new array of only the runs that are still missing or failed.
"""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from kerasclf.errors import ConfigError
from kerasclf.studies.sweep import (
    Plan,
    Point,
    _check_finished_match_plan,
    _child_env,
    _Runner,
    states,
    write_study_files,
)

SLURM_DIR = "slurm"
TASKS_FILE = "tasks.json"
SCRIPT_FILE = "sweep.sbatch"


def parse_slurm_options(texts):
    """--slurm KEY=VALUE (repeatable) -> [(key, value)]: each becomes `#SBATCH --KEY=VALUE`."""
    options = []
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key or not value.strip() or any(c.isspace() for c in key):
            raise ConfigError(
                f"--slurm takes KEY=VALUE, one sbatch option each (e.g. --slurm partition=gpu --slurm gres=gpu:1 "
                f"--slurm time=04:00:00); got {text!r}."
            )
        if key in ("array", "output", "job-name"):
            raise ConfigError(f"--slurm {key}=... is set by kerasclf (one array task per missing run); leave it out.")
        options.append((key, value.strip()))
    return options


def write_slurm_array(plan, slurm_options=(), argv=None):
    """Write tasks.json and sweep.sbatch for the plan's missing runs; returns (script, todo names)."""
    current = states(plan) if plan.study_dir.is_dir() else {p.name: "missing" for p in plan.points}
    _check_finished_match_plan(plan, current)
    write_study_files(plan, argv)
    todo = [p for p in plan.points if current[p.name] != "finished"]
    folder = plan.study_dir / SLURM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tasks = {"data_dir": plan.data_dir, "runs": [{"name": p.name, "overrides": p.overrides} for p in todo]}
    (folder / TASKS_FILE).write_text(json.dumps(tasks, indent=1))
    script = folder / SCRIPT_FILE
    if todo:
        script.write_text(_script(plan, len(todo), slurm_options))
        script.chmod(0o755)
    elif script.exists():
        script.unlink()  # nothing left to run: no stale array to submit by mistake
    return script, [p.name for p in todo]


def _script(plan, count, slurm_options):
    env = _child_env()
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={plan.name}",
        f"#SBATCH --array=0-{count - 1}",
        f"#SBATCH --output={plan.study_dir / SLURM_DIR}/%A_%a.out",
        *(f"#SBATCH --{key}={value}" for key, value in slurm_options),
        "# Written by `kerasclf sweep --launcher slurm`: one run of the study per array task.",
        "set -euo pipefail",
        f"export PYTHONPATH={shlex.quote(env['PYTHONPATH'])}",
        f"export TF_CPP_MIN_LOG_LEVEL={shlex.quote(env['TF_CPP_MIN_LOG_LEVEL'])}",
        f"exec {shlex.quote(sys.executable)} -m kerasclf.cli sweep-task {shlex.quote(str(plan.study_dir))} "
        '"${SLURM_ARRAY_TASK_ID:?this script runs as a Slurm array task (sbatch), or set SLURM_ARRAY_TASK_ID}"',
    ]
    return "\n".join(lines) + "\n"


def submit(script):
    """sbatch the script where Slurm is installed; else None (the caller says how)."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return None
    done = subprocess.run([sbatch, str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"sbatch {script} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def run_task(study_dir, index):
    """One array task: train run number `index` of tasks.json into the study (as a local sweep)."""
    study_dir = Path(study_dir)
    tasks_path = study_dir / SLURM_DIR / TASKS_FILE
    try:
        tasks = json.loads(tasks_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{tasks_path} is missing or unreadable ({exc}): write it with `kerasclf sweep ... --launcher slurm`."
        ) from None
    runs = tasks["runs"]
    if not 0 <= index < len(runs):
        raise ConfigError(f"Array task {index} does not exist: {tasks_path} lists {len(runs)} runs (0..{len(runs) - 1}).")
    entry = runs[index]
    plan = Plan(study_dir.name, study_dir, {}, [], {}, tasks.get("data_dir"))
    point = Point(entry["name"], [tuple(pair) for pair in entry["overrides"]])
    _, state, error, seconds = _Runner(plan, 1, print).run_point(point)
    print(f"{point.name}: {state} in {seconds:.0f} s" + (f" -- {error}" if error else ""), flush=True)
    return state


def how_to_submit(script):
    return f"sbatch {shlex.quote(str(script))}"
