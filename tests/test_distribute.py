"""train.distribute: the same config on N devices and N processes (training/distribute.py),
and `sweep --launcher slurm` (studies/slurm.py).

The oracle for "distributed is right" is the one-device run itself: for the same global batch
and seed, the per-epoch losses agree within a stated tolerance. Each run is its own process
because the CPU is split into logical devices before the backend starts.
"""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, TINY_CNN

from kerasclf.config import load_config
from kerasclf.errors import ConfigError

# Two epochs of the demo's digits, input in a fixed order (train.deterministic: without it the
# parallel decoding may hand over batches in another order under load, which moved a CI run's
# JAX curve by 1%). BatchNorm per replica on TensorFlow sees half the batch, so the curves agree
# to about 1e-2 there; JAX (BatchNorm over the global batch) agreed to 6e-5 (float sums in
# another order, measured with two busy-looping processes beside it).
BASE = ["--config", str(REPO_ROOT / "configs/digits/demo.yaml"), *TINY_CNN, "--set", "train.epochs=2",
        "--set", "optim.warmup_epochs=0", "--set", "train.evaluate_after=false", "--set", "train.verbose=0",
        "--set", "model.dropout=0", "--set", "augment.crop_padding=0", "--set", "train.deterministic=true"]  # no per-device random draws
TOLERANCE = {"tensorflow": 0.03, "jax": 0.002}


def _env(backend, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_DISTRIBUTION", "SLURM", "TF_CONFIG"))}
    env.update({"KERAS_BACKEND": backend, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                "XLA_FLAGS": "", **extra})
    return env


def _train(tmp_path, name, backend, *sets, env=None):
    args = [*BASE, "--set", f"train.log_dir={tmp_path}", "--set", f"train.run_name={name}"]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run([sys.executable, "-m", "kerasclf.cli", "train", *args], cwd=tmp_path,
                          env=env or _env(backend), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / name


def _losses(run_dir):
    with open(run_dir / "history.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


# --- the validation pass -----------------------------------------------------------------------

def test_an_engine_of_the_other_backend_is_refused_before_anything_runs():
    import keras

    other = "data-parallel" if keras.backend.backend() == "tensorflow" else "mirrored"
    with pytest.raises(ConfigError, match=r"runs on the (jax|tensorflow) backend.*KERAS_BACKEND="):
        load_config(REPO_ROOT / "configs/digits/demo.yaml", [f"train.distribute={other}"])


def test_hosts_need_data_parallel_and_an_index(monkeypatch):
    for name in ("KERAS_DISTRIBUTION_PROCESS_ID", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="train.hosts starts a JAX multi-process run"):
        load_config(REPO_ROOT / "configs/digits/demo.yaml", ["train.hosts=[a:1, b:1]"])
    with pytest.raises(ConfigError, match=r"needs its index 0\.\.1"):
        load_config(REPO_ROOT / "configs/digits/demo.yaml",
                    ["train.distribute=data-parallel", "train.hosts=[a:1, b:1]"])
    monkeypatch.setenv("SLURM_PROCID", "5")  # an index outside the list is refused too
    with pytest.raises(ConfigError, match="got 5"):
        load_config(REPO_ROOT / "configs/digits/demo.yaml",
                    ["train.distribute=data-parallel", "train.hosts=[a:1, b:1]"])


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(ConfigError, match='Did you mean "mirrored"'):
        load_config(REPO_ROOT / "configs/digits/demo.yaml", ["train.distribute=mirored"])


# --- one machine, several devices --------------------------------------------------------------

@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_follows_the_one_device_curve(tmp_path):
    one = _train(tmp_path, "one", "tensorflow")
    two = _train(tmp_path, "two", "tensorflow", "train.distribute=mirrored", "train.cpu_devices=2")
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 2
    assert all(abs(x - y) <= TOLERANCE["tensorflow"] * max(1.0, abs(x)) for x, y in zip(a, b)), (a, b)
    m = _metrics(two)
    assert (m["distribute"], m["devices"], m["hosts"]) == ("mirrored", 2, 1)
    assert (m["global_batch_size"], m["per_device_batch_size"]) == (64, 32)
    assert m["lr_effective"] == _metrics(one)["lr_effective"] == pytest.approx(0.002)  # never rescaled silently


@pytest.mark.slow
def test_a_checkpoint_of_a_mirrored_run_resumes_and_evaluates_on_one_device(tmp_path):
    run = _train(tmp_path, "two", "tensorflow", "train.distribute=mirrored", "train.cpu_devices=2",
                 "optim.schedule=constant", "train.epochs=1", "optim.scale_lr_with_batch=32")
    assert _metrics(run)["lr_effective"] == pytest.approx(0.002 * 64 / 32)  # the linear rule, when asked for
    done = subprocess.run(
        [sys.executable, "-m", "kerasclf.cli", "train", "--resume", str(run), "--set", "train.epochs=2",
         "--set", "train.distribute=none", "--set", "train.cpu_devices=null"],
        cwd=tmp_path, env=_env("tensorflow"), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_losses(run)) == 2 and _metrics(run)["devices"] == 1
    done = subprocess.run([sys.executable, "-m", "kerasclf.cli", "evaluate", "--checkpoint", str(run / "best.keras")],
                          cwd=tmp_path, env=_env("tensorflow"), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "eval" / "test" / "report.md").is_file()


@pytest.mark.slow
def test_data_parallel_on_two_jax_cpu_devices_follows_the_one_device_curve(tmp_path):
    pytest.importorskip("jax")
    even = ("train.data_on_device=false", "data.limit_per_class=100")  # splits of 700 / 100 / 200 images
    one = _train(tmp_path, "one", "jax", *even)
    two = _train(tmp_path, "two", "jax", "train.distribute=data-parallel", "train.cpu_devices=2", *even)
    a, b = _losses(one), _losses(two)
    assert all(abs(x - y) <= TOLERANCE["jax"] * max(1.0, abs(x)) for x, y in zip(a, b)), (a, b)
    m = _metrics(two)
    assert (m["distribute"], m["devices"], m["per_device_batch_size"]) == ("data-parallel", 2, 32)


# --- several processes -------------------------------------------------------------------------

def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_is_refused_with_the_reason_and_what_works():
    with pytest.raises(ConfigError, match="MultiWorkerMirroredStrategy.*KERAS_BACKEND=jax.*train.hosts"):
        load_config(REPO_ROOT / "configs/digits/demo.yaml", ["train.distribute=multi-worker"])


BARE_CLUSTER = """
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras, numpy as np
x = np.random.RandomState(0).rand(64, 4).astype("float32"); y = (x.sum(1) > 2).astype("int32")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
print("FIT-OK")
"""


@pytest.mark.slow
def test_keras_still_cannot_fit_under_multi_worker(tmp_path):
    """The reason multi-worker is refused. When this fails, Keras trains under the strategy:
    drop `unusable` from its registration and test a 2-process kerasclf run instead."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [subprocess.Popen(
        [sys.executable, "-c", BARE_CLUSTER], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_env("tensorflow", TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": i}})),
    ) for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all("FIT-OK" not in o and "PerReplica" in o for o in outputs), outputs[0][-2000:]


# --- Slurm job arrays --------------------------------------------------------------------------

@pytest.mark.slow
def test_a_slurm_array_runs_every_task_locally_and_compares_like_a_sweep(tmp_path):
    def kerasclf(*args, env=None):
        done = subprocess.run([sys.executable, "-m", "kerasclf.cli", *args], cwd=tmp_path,
                              env=env or _env("tensorflow"), capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    sweep = ["sweep", *BASE, "--set", "train.epochs=1", "--set", f"train.log_dir={tmp_path}", "--name", "grid",
             "--grid", "optim.lr=0.001,0.002", "--grid", "seed=0,1", "--launcher", "slurm",
             "--slurm", "partition=gpu", "--slurm", "time=00:30:00"]
    out = kerasclf(*sweep)
    assert "sbatch is not installed here" in out  # this machine has no Slurm: it says how to submit
    script = tmp_path / "grid" / "slurm" / "sweep.sbatch"
    text = script.read_text()
    assert "#SBATCH --array=0-3" in text and "#SBATCH --partition=gpu" in text and "#SBATCH --time=00:30:00" in text
    for task in range(4):  # what Slurm would do: the script once per array index
        done = subprocess.run(["bash", str(script)], env=_env("tensorflow", SLURM_ARRAY_TASK_ID=str(task)),
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "grid").iterdir() if (p / "metrics.json").is_file())
    assert len(runs) == 4
    out = kerasclf("compare", str(tmp_path / "grid"))
    table = (tmp_path / "grid" / "comparison.md").read_text()
    assert all(run in table for run in runs)
    # re-submission covers only what is missing
    import shutil

    shutil.rmtree(tmp_path / "grid" / runs[0])
    kerasclf(*sweep)
    tasks = json.loads((tmp_path / "grid" / "slurm" / "tasks.json").read_text())
    assert [r["name"] for r in tasks["runs"]] == [runs[0]]
    assert "#SBATCH --array=0-0" in script.read_text()


def test_slurm_options_that_kerasclf_owns_or_cannot_read_are_refused(tmp_path):
    from kerasclf.studies.slurm import parse_slurm_options

    assert parse_slurm_options(["--gres=gpu:2", "mem = 16G"]) == [("gres", "gpu:2"), ("mem", "16G")]
    for bad, why in (("array=0-9", "set by kerasclf"), ("partition", "KEY=VALUE"), ("=gpu", "KEY=VALUE")):
        with pytest.raises(ConfigError, match=why):
            parse_slurm_options([bad])


def test_an_array_task_outside_the_written_list_is_a_clear_error(tmp_path):
    from kerasclf.studies.slurm import run_task

    with pytest.raises(ConfigError, match="sweep .* --launcher slurm"):
        run_task(tmp_path / "nothing", 0)
    (tmp_path / "s" / "slurm").mkdir(parents=True)
    (tmp_path / "s" / "slurm" / "tasks.json").write_text(json.dumps({"data_dir": None, "runs": []}))
    with pytest.raises(ConfigError, match="lists 0 runs"):
        run_task(tmp_path / "s", 3)



@pytest.mark.parametrize("sets,fragments", [
    (["data.stream=true"], ["data.stream=true"]),
    (["train.data_on_device=true"], ["train.data_on_device=true"]),
    (["data.batch_size=63"], ["data.batch_size=63", "2 processes"]),
    (["train.cpu_devices=2", "data.batch_size=66"], ["data.batch_size=66", "4 devices", "e.g. 64"]),
])
def test_several_processes_refuse_what_they_cannot_feed(monkeypatch, sets, fragments):
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "0")
    monkeypatch.setattr("kerasclf.config.checks.keras_backend", lambda: "jax")
    with pytest.raises(ConfigError) as caught:
        load_config(REPO_ROOT / "configs/digits/demo.yaml",
                    ["train.distribute=data-parallel", "train.hosts=[127.0.0.1:1234, 127.0.0.1:1234]", *sets])
    assert all(f in str(caught.value) for f in fragments), str(caught.value)


def test_full_batches_score_every_image_exactly_once():
    """A multi-process run's input (static_batches): training drops the partial batch, evaluation
    pads it and weights the batches so that loss and accuracy are those of the real images."""
    import keras
    import numpy as np

    from kerasclf.data.pipeline import fit_inputs
    from kerasclf.data.splits import Split

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8), rng.integers(0, 3, 23).astype(np.int32))
    common = {"num_classes": 3, "one_hot_labels": False}
    train = fit_inputs(split, 8, training=True, static_batches=True, **common)["x"]
    assert [len(images) for images, _ in train.as_numpy_iterator()] == [8, 8]  # 23 // 8; 7 dropped
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    padded = fit_inputs(split, 8, training=False, static_batches=True, **common)["x"]
    assert [len(batch[0]) for batch in padded.as_numpy_iterator()] == [8, 8, 8]
    exact = model.evaluate(split.x, split.y, batch_size=23, verbose=0, return_dict=True)
    scored = model.evaluate(padded, verbose=0, return_dict=True)
    assert scored["loss"] == pytest.approx(exact["loss"], rel=1e-5)
    assert scored["accuracy"] == pytest.approx(exact["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_two_jax_processes_write_one_run_that_follows_the_one_process_curve(tmp_path):
    """Two processes (one CPU device each) on localhost against one process on one device, the
    same global batch; 1000 / 50 training images so that no batch is dropped. Measured: the
    losses agree to 2e-5 relative (float sums in another order), val_loss to 1.3e-4."""
    pytest.importorskip("jax")
    sets = ("data.limit_per_class=100", "data.batch_size=50")
    one = _train(tmp_path, "one", "jax", *sets, "train.data_on_device=false")
    port = _free_ports(1)[0]
    hosts = f"train.hosts=[127.0.0.1:{port}, 127.0.0.1:{port}]"  # process 0 is the coordinator
    args = [*BASE, "--set", f"train.log_dir={tmp_path / 'logs'}", "--set", "train.run_name=two"]
    for s in (*sets, "train.distribute=data-parallel", hosts):
        args += ["--set", s]
    procs = [subprocess.Popen([sys.executable, "-m", "kerasclf.cli", "train", *args], cwd=tmp_path,
                              env=_env("jax", KERAS_DISTRIBUTION_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "Run directory: written by process 0" in outputs[1]
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["two"]  # the worker's scratch folder is gone
    two = tmp_path / "logs" / "two"
    m = _metrics(two)
    assert (m["distribute"], m["devices"], m["hosts"], m["global_batch_size"]) == ("data-parallel", 2, 2, 50)
    assert m["train_images_dropped_per_epoch"] == 0
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 2
    assert all(abs(x - y) <= TOLERANCE["jax"] * max(1.0, abs(x)) for x, y in zip(a, b)), (a, b)
    with open(one / "history.csv") as f1, open(two / "history.csv") as f2:  # validation scores every image once
        v1, v2 = ([float(r["val_loss"]) for r in csv.DictReader(f)] for f in (f1, f2))
    assert all(abs(x - y) <= TOLERANCE["jax"] * max(1.0, abs(x)) for x, y in zip(v1, v2)), (v1, v2)
    assert m["test_accuracy"] == pytest.approx(_metrics(one)["test_accuracy"], abs=1 / m["test_size"] + 1e-9)
