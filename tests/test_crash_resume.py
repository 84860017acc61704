"""Killed processes: SIGKILL mid-epoch then --resume, SIGTERM, and kills while artefacts are written.

These start `python -m kerasclf.cli` (or a writer process) and kill it for real, so they
take tens of seconds each: all are marked slow.
"""

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = [
    "data.source=digits", "data.limit_per_class=40", "model.name=cnn", "model.filters=[8]", "model.dense=[16]",
    "train.verbose=0", "train.evaluate_after=false", "train.deterministic=true", "augment.flip=true",
    "train.epochs=3", "data.test_fraction=0.2",
]
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def command(logs, name, backend, *extra):
    sets = [a for o in (*RUN, f"train.log_dir={logs}", f"train.run_name={name}", *extra) for a in ("--set", o)]
    return [sys.executable, "-m", "kerasclf.cli", "train", *sets]


def environment(backend):
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}


def rows(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def wait_for_rows(process, history, n, timeout=600):
    """Until `n` epochs are in history.csv AND in the resume state (written after the row: a kill
    between the two is a kill within the epoch, which the resume then runs again)."""
    deadline = time.monotonic() + timeout
    state = history.parent / "resume" / "state.npz"
    while len(rows(history)) < n or not state.is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)


def epoch_loss_steps(run):
    import tensorflow as tf

    return [
        event.step
        for path in sorted((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value if value.tag == "epoch_loss"
    ]


def backend_available(backend):
    import importlib.util

    return importlib.util.find_spec("tensorflow" if backend == "tensorflow" else backend) is not None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path, backend):
    if not backend_available(backend):
        pytest.skip(f"{backend} is not installed")
    env, logs = environment(backend), tmp_path / "logs"
    full = subprocess.run(command(logs, "full", backend), env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]

    killed = subprocess.Popen(command(logs, "killed", backend), env=env, cwd=REPO_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_rows(killed, logs / "killed" / "history.csv", 1)
    time.sleep(random.uniform(0.0, 0.3))  # somewhere in epoch 2, or in epoch 1's saving
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL

    resumed = subprocess.run([sys.executable, "-m", "kerasclf.cli", "train", "--resume", str(logs / "killed")],
                             env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = rows(logs / "full" / "history.csv"), rows(logs / "killed" / "history.csv")
    assert [r["epoch"] for r in b] == [r["epoch"] for r in a] == ["1", "2", "3"]
    for key in METRICS:
        assert [r[key] for r in b] == [r[key] for r in a], key
    ma, mb = (json.loads((logs / n / "metrics.json").read_text()) for n in ("full", "killed"))
    for key in ("best_val_accuracy", "best_epoch", "test_accuracy", "final_train_accuracy"):
        assert mb[key] == ma[key], key
    assert mb["sessions"] == 2
    if backend == "tensorflow":  # what the killed epoch logged was cut: every epoch once in TensorBoard
        assert sorted(epoch_loss_steps(logs / "killed")) == [1, 2, 3]


@pytest.mark.slow
def test_sigterm_stops_with_exit_143_and_the_resume_command(tmp_path):
    env, logs = environment("tensorflow"), tmp_path / "logs"
    run = logs / "term"
    process = subprocess.Popen(command(logs, "term", "tensorflow", "train.epochs=20"), env=env, cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(process, run / "history.csv", 1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-3000:]
    assert "SIGTERM received: stopping after the current step" in err
    # in the epoch, or just after one finished and was saved (then the message says nothing reruns)
    assert re.search(r"Stopped: Training stopped by SIGTERM (in|after) epoch", err) and f"kerasclf train --resume {run}" in err
    assert "Traceback" not in err
    done = len(rows(run / "history.csv"))
    assert 1 <= done < 20
    assert json.loads((run / "metrics.json").read_text())["stopped"] == "SIGTERM"


# A writer process that forks children which write artefacts in a loop, as a run does at
# every epoch end; the test SIGKILLs each child at a random moment. Forking from one process
# that has already imported Keras (numpy backend: no threads) keeps 20 kills cheap.
WRITER = textwrap.dedent('''
    import os, sys
    os.environ["KERAS_BACKEND"] = "numpy"
    from pathlib import Path
    import numpy as np
    import keras
    from kerasclf.runs.atomic import write_json
    from kerasclf.evaluation.report import write_report
    from kerasclf.runs.artefacts import AtomicModelCheckpoint, HistoryCSV

    run = Path(sys.argv[1])

    def write_forever(seed):
        rng = np.random.default_rng(seed)
        inputs = keras.Input((256,))
        model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(1024)(inputs)))
        best = AtomicModelCheckpoint(str(run / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True)
        last = AtomicModelCheckpoint(str(run / "last.keras"))
        history = HistoryCSV(run / "history.csv")
        for callback in (best, last, history):
            callback.set_model(model)
        y = rng.integers(0, 10, 200)
        for epoch in range(10**6):
            for weight in model.weights:
                weight.assign(rng.normal(size=weight.shape).astype("float32"))
            logs = {"loss": float(rng.random()), "val_accuracy": float(epoch)}
            for callback in (best, last, history):
                callback.on_epoch_end(epoch, logs)
            write_json(run / "metrics.json", {"epoch": epoch, "values": rng.random(3000).tolist()})
            write_report(run / "eval" / "test", y, rng.random((200, 10)), [str(c) for c in range(10)],
                         history_csv=run / "history.csv")

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            write_forever(int(line))
            os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
''')


def artefacts(folder, pattern):
    """Files matching `pattern`, without the temporary files a killed writer leaves (.tmp-*)."""
    from kerasclf.runs.atomic import TMP_PREFIX

    return [p for p in folder.glob(pattern) if not p.name.startswith(TMP_PREFIX)]


def assert_readable(run):
    """Every artefact that exists is complete: loads, parses, has whole rows."""
    import keras

    for name in ("best.keras", "last.keras"):
        if (run / name).exists():
            model = keras.saving.load_model(str(run / name), safe_mode=True)
            assert len(model.weights) == 4, name
    if (run / "history.csv").exists():
        table = rows(run / "history.csv")
        assert [int(r["epoch"]) for r in table] == list(range(1, len(table) + 1))
        assert all(None not in r and all(v not in (None, "") for v in r.values()) for r in table)
    for path in (run / "metrics.json", run / "eval" / "test" / "metrics.json"):
        if path.exists():
            json.loads(path.read_text())
    for png in artefacts(run / "eval" / "test", "*.png"):
        from PIL import Image

        with Image.open(png) as image:
            image.load()
    for path in artefacts(run / "eval" / "test", "*.csv"):
        with open(path, newline="") as f:
            widths = {len(row) for row in csv.reader(f)}
        assert len(widths) == 1, path


@pytest.mark.slow
def test_twenty_sigkills_while_writing_never_leave_an_unreadable_artefact(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(run)], env=environment("numpy"), cwd=REPO_ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rng = random.Random(0)
    try:
        for kill in range(20):
            writer.stdin.write(f"{kill}\n")
            writer.stdin.flush()
            child = int(writer.stdout.readline())
            # the first child starts from nothing; later ones overwrite what earlier ones wrote
            deadline = time.monotonic() + 120
            while not (run / "eval" / "test" / "report.md").exists():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            os.kill(child, signal.SIGKILL)
            assert writer.stdout.readline().strip() == "reaped"
            assert_readable(run)
    finally:
        writer.kill()
        writer.wait()
    assert zipfile.is_zipfile(run / "best.keras")
    assert list(run.rglob(".tmp-*"))  # the kills did land in the middle of writes
    assert np.isfinite([float(r["loss"]) for r in rows(run / "history.csv")]).all()
