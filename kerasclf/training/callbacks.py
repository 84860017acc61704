"""Callbacks Keras lacks: learning rate and system resources in the logs, test accuracy per epoch.

They write into `logs` so that CSVLogger and TensorBoard (which run after them) record the
values; order in the callback list matters.
"""

import time

import keras
import psutil

from kerasclf.training.optimizers import current_lr
from kerasclf.training.resources import EpochSampler, GpuMonitor


class LearningRateLogger(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_lr(self.model.optimizer)


class SystemMonitor(keras.callbacks.Callback):
    """CPU %, process memory, the backend's accelerator memory and, through NVML, each GPU's
    mean utilisation and peak memory per epoch (see resources.py)."""

    def __init__(self, gpu_interval=0.5):
        super().__init__()
        self.gpu_interval = gpu_interval
        self._gpu = self._sampler = None

    def on_train_begin(self, logs=None):
        self._gpu = GpuMonitor.open()
        self._sampler = EpochSampler(self._gpu, self.gpu_interval) if self._gpu else None

    def on_epoch_begin(self, epoch, logs=None):
        psutil.cpu_percent(None)  # starts the interval that on_epoch_end reads
        self._start = time.perf_counter()
        if self._sampler:
            self._sampler.start()

    def on_epoch_end(self, epoch, logs=None):
        gpu = self._sampler.stop() if self._sampler else None
        if self._sampler and gpu is None:  # NVML failed: no more GPU readings this run
            self.on_train_end()
        if logs is None:
            return
        logs["epoch_seconds"] = time.perf_counter() - self._start
        logs["sys_cpu_percent"] = psutil.cpu_percent(None)
        logs["sys_memory_gb"] = psutil.Process().memory_info().rss / 2**30
        accelerator = _accelerator_memory_gb()
        if accelerator is not None:
            logs["sys_accelerator_memory_gb"] = accelerator
        logs.update(gpu or {})

    def on_train_end(self, logs=None):
        if self._sampler:
            self._sampler.cancel()
        if self._gpu:
            self._gpu.close()
        self._gpu = self._sampler = None


def _accelerator_memory_gb():
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax  # lazy: JAX is optional

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            return device.memory_stats()["bytes_in_use"] / 2**30
        if backend == "tensorflow":
            import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

            if not tf.config.list_logical_devices("GPU"):
                return None
            return tf.config.experimental.get_memory_info("GPU:0")["current"] / 2**30
    except Exception:  # stats are best-effort; never fail a run over them
        return None
    return None


class TestAccuracy(keras.callbacks.Callback):
    """Evaluates the test split after every epoch (experiments that report test accuracy per epoch)."""

    def __init__(self, inputs):
        super().__init__()
        self.inputs = inputs

    def on_epoch_end(self, epoch, logs=None):
        results = self.model.evaluate(**self.inputs, verbose=0, return_dict=True)
        if logs is not None:
            logs["test_accuracy"] = results["accuracy"]
            logs["test_loss"] = results["loss"]


class EpochClock(keras.callbacks.Callback):
    """Tells the training orders (data/order.py) which epoch starts, before Keras creates its iterator."""

    def __init__(self, orders):
        super().__init__()
        self.orders = list(orders)

    def on_epoch_begin(self, epoch, logs=None):
        for order in self.orders:
            order.epoch = int(epoch)
