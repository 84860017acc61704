"""GPU utilisation and memory through NVML (nvidia-ml-py's `pynvml`), sampled during each epoch.

NVML reports what the driver sees: utilisation is the share of the last sample period in
which a kernel ran, memory is what every process holds on the device. One reading at the
end of an epoch says little about the epoch, so a background thread reads every
`interval` seconds and the epoch gets the mean utilisation and the peak memory.
Without nvidia-ml-py, without a driver or without a GPU, `GpuMonitor.open()` is None and
nothing GPU-related is logged.
"""

import threading
import warnings

GIB = 2**30


class GpuMonitor:
    """Readings of every GPU NVML sees: [(utilisation %, memory used bytes, memory total bytes)]."""

    def __init__(self, nvml, handles):
        self.nvml, self.handles = nvml, handles

    @classmethod
    def open(cls):
        try:
            import pynvml  # lazy: nvidia-ml-py is optional (gpu extra)
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # NVMLError (no driver, no permission) or a broken install: no GPU figures
            return None
        if not handles:
            cls._shutdown(pynvml)
            return None
        return cls(pynvml, handles)

    def read(self):
        out = []
        for handle in self.handles:
            util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((float(util.gpu), int(memory.used), int(memory.total)))
        return out

    def close(self):
        self._shutdown(self.nvml)

    @staticmethod
    def _shutdown(nvml):
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def summarize(samples):
    """Per-epoch log values from a list of `read()` results: mean utilisation, peak memory (GiB)."""
    logs = {}
    if not samples:
        return logs
    for i in range(len(samples[0])):
        utils = [s[i][0] for s in samples]
        logs[f"sys_gpu{i}_util_percent"] = sum(utils) / len(utils)
        logs[f"sys_gpu{i}_memory_gb"] = max(s[i][1] for s in samples) / GIB
    return logs


class EpochSampler:
    """Reads a GpuMonitor every `interval` seconds between start() and stop()."""

    def __init__(self, monitor, interval=0.5):
        self.monitor, self.interval = monitor, interval
        self.samples, self.failed = [], None
        self._stop = threading.Event()
        self._thread = None

    def _read(self):
        try:
            self.samples.append(self.monitor.read())
            return True
        except Exception as exc:  # the GPU went away mid-run: stop reading, keep training
            self.failed = exc
            return False

    def _loop(self):
        while not self._stop.wait(self.interval):
            if not self._read():
                return

    def start(self):
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kerasclf-gpu-sampler", daemon=True)
        self._thread.start()

    def cancel(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def stop(self):
        """Stop the thread, take a last reading; return the epoch's log values."""
        self.cancel()
        if self.failed is None:
            self._read()
        if self.failed is not None:
            warnings.warn(f"Reading the GPU through NVML failed ({self.failed}); GPU figures stop here.", stacklevel=2)
            return None
        return summarize(self.samples)
