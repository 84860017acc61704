"""GPU figures through NVML: a fake `pynvml` module stands in for the driver (no GPU here).

The fake answers like nvidia-ml-py does (objects with .gpu / .used / .total, NVMLError on
failure), so these tests check our reading, aggregation and logging of those answers.
"""

import csv
import sys
import types
import warnings

import pytest

GIB = 2**30


def fake_pynvml(gpus, init_error=False, fail_after=None):
    """gpus: list of per-GPU lists of (utilisation %, used GiB, total GiB) readings, replayed in order
    (the last one repeats). fail_after: raise NVMLError after that many readings of GPU 0."""
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    calls = {"init": 0, "shutdown": 0, "reads": [0] * len(gpus)}

    def init():
        calls["init"] += 1
        if init_error:
            raise NVMLError("NVML Shared Library Not Found")

    def reading(handle):
        i = calls["reads"][handle]
        return gpus[handle][min(i, len(gpus[handle]) - 1)]

    def utilization(handle):
        if fail_after is not None and handle == 0 and calls["reads"][0] >= fail_after:
            raise NVMLError("GPU is lost")
        return types.SimpleNamespace(gpu=reading(handle)[0], memory=0)

    def memory(handle):
        util, used, total = reading(handle)
        calls["reads"][handle] += 1  # one reading = utilisation then memory
        return types.SimpleNamespace(used=int(used * GIB), total=int(total * GIB), free=int((total - used) * GIB))

    module.NVMLError = NVMLError
    module.nvmlInit = init
    module.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetUtilizationRates = utilization
    module.nvmlDeviceGetMemoryInfo = memory
    module.calls = calls
    return module


def test_monitor_reads_every_gpu_and_summarizes_mean_utilisation_and_peak_memory(monkeypatch):
    from kerasclf.training.resources import GpuMonitor, summarize

    nvml = fake_pynvml([[(10, 1.0, 16), (50, 3.5, 16), (90, 2.0, 16)], [(0, 0.25, 8)]])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monitor = GpuMonitor.open()
    samples = [monitor.read() for _ in range(3)]
    assert samples[1] == [(50.0, int(3.5 * GIB), 16 * GIB), (0.0, int(0.25 * GIB), 8 * GIB)]
    logs = summarize(samples)
    assert logs == {
        "sys_gpu0_util_percent": pytest.approx(50.0), "sys_gpu0_memory_gb": pytest.approx(3.5),
        "sys_gpu1_util_percent": pytest.approx(0.0), "sys_gpu1_memory_gb": pytest.approx(0.25),
    }
    monitor.close()
    assert nvml.calls["shutdown"] == 1


@pytest.mark.parametrize("case", ["not installed", "no driver", "no device"])
def test_no_gpu_means_no_monitor(monkeypatch, case):
    from kerasclf.training.resources import GpuMonitor

    if case == "not installed":
        monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    else:
        nvml = fake_pynvml([] if case == "no device" else [[(1, 1, 1)]], init_error=case == "no driver")
        monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert GpuMonitor.open() is None


def _epoch(monitor, epoch):
    logs = {}
    monitor.on_epoch_begin(epoch)
    monitor.on_epoch_end(epoch, logs)
    return logs


@pytest.mark.backend_agnostic
def test_system_monitor_logs_gpu_figures_next_to_cpu_and_memory(monkeypatch):
    from kerasclf.training.callbacks import SystemMonitor

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([[(37, 2.5, 80)]]))
    monitor = SystemMonitor(gpu_interval=0.01)
    monitor.on_train_begin()
    logs = _epoch(monitor, 0)
    monitor.on_train_end()
    assert {"epoch_seconds", "sys_cpu_percent", "sys_memory_gb"} <= set(logs)
    assert logs["sys_gpu0_util_percent"] == pytest.approx(37.0)
    assert logs["sys_gpu0_memory_gb"] == pytest.approx(2.5)


@pytest.mark.backend_agnostic
def test_system_monitor_without_gpu_logs_cpu_and_memory_only(monkeypatch):
    from kerasclf.training.callbacks import SystemMonitor

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monitor = SystemMonitor()
    monitor.on_train_begin()
    logs = _epoch(monitor, 0)
    monitor.on_train_end()
    assert {"sys_cpu_percent", "sys_memory_gb"} <= set(logs)
    assert not [k for k in logs if k.startswith("sys_gpu")]


def test_gpu_lost_mid_run_warns_once_and_training_goes_on(monkeypatch):
    from kerasclf.training.callbacks import SystemMonitor

    nvml = fake_pynvml([[(20, 1.0, 8)]], fail_after=1)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monitor = SystemMonitor(gpu_interval=60)  # no reading from the thread: one at each epoch end
    monitor.on_train_begin()
    first = _epoch(monitor, 0)
    assert first["sys_gpu0_util_percent"] == pytest.approx(20.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = _epoch(monitor, 1)
        third = _epoch(monitor, 2)
    assert [str(w.message) for w in caught if "NVML" in str(w.message)] == [
        "Reading the GPU through NVML failed (GPU is lost); GPU figures stop here."
    ]
    assert "sys_cpu_percent" in second and "sys_cpu_percent" in third
    assert not [k for k in {**second, **third} if k.startswith("sys_gpu")]
    assert nvml.calls["shutdown"] == 1


@pytest.mark.slow
def test_gpu_figures_reach_history_csv_and_the_report(monkeypatch, cli, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([[(64, 3.0, 80)], [(12, 0.5, 80)]]))
    sets = [
        "data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]", "train.epochs=2",
        "train.verbose=0", f"train.log_dir={tmp_path}", "train.run_name=r",
    ]
    result = cli("train", *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, (result.output, result.exception)
    with open(tmp_path / "r" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        assert float(row["sys_gpu0_util_percent"]) == pytest.approx(64.0)
        assert float(row["sys_gpu1_memory_gb"]) == pytest.approx(0.5)
        assert float(row["sys_cpu_percent"]) >= 0
    report = (tmp_path / "r" / "eval" / "test" / "report.md").read_text()
    assert "![System resources per epoch](resources.png)" in report
    assert (tmp_path / "r" / "eval" / "test" / "resources.png").stat().st_size > 10_000


def test_resources_figure_needs_resource_columns(tmp_path):
    from kerasclf.evaluation.resource_figures import _series, plot_resources
    from kerasclf.plotting import read_history

    old = tmp_path / "old.csv"
    old.write_text("epoch,accuracy,loss\n0,0.5,1.0\n1,0.6,0.9\n")
    assert plot_resources(old, tmp_path / "a.png") is None and not (tmp_path / "a.png").exists()
    new = tmp_path / "new.csv"
    new.write_text("epoch,sys_cpu_percent,sys_memory_gb,sys_gpu0_util_percent,sys_gpu0_memory_gb,sys_gpu1_util_percent\n"
                   "0,50,1.5,30,2.0,NA\n1,60,1.6,40,2.1,NA\n")
    percent, memory = _series(read_history(new))
    # GPU 1 logged nothing (NA): not drawn
    assert [k for _, k in percent] == ["sys_cpu_percent", "sys_gpu0_util_percent"]
    assert [k for _, k in memory] == ["sys_memory_gb", "sys_gpu0_memory_gb"]
    assert plot_resources(new, tmp_path / "b.png") == str(tmp_path / "b.png")


@pytest.mark.parametrize("first", [0, 1])
def test_resources_figure_numbers_epochs_like_the_curves(tmp_path, monkeypatch, first):
    """kerasclf's history.csv numbers epochs from 1, Keras's CSVLogger from 0: both are drawn
    as epochs 1..N (the figure once drew a 10-epoch run as epochs 2..11)."""
    import matplotlib.axes

    from kerasclf.evaluation.resource_figures import plot_resources

    drawn = []
    real_plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, x, *a, **k: drawn.append(list(x)) or real_plot(ax, x, *a, **k))
    history = tmp_path / "history.csv"
    history.write_text("epoch,sys_cpu_percent,sys_memory_gb\n" + "".join(f"{first + i},50,1.5\n" for i in range(3)))
    assert plot_resources(history, tmp_path / "r.png")
    assert drawn and all(x == [1, 2, 3] for x in drawn)
