"""`train.distribute`: the same run on N devices and N hosts, through the engines Keras supports.

- `none`: one device (the default).
- `mirrored`: tf.distribute.MirroredStrategy over every local GPU (TensorFlow backend).
- `multi-worker`: tf.distribute.MultiWorkerMirroredStrategy over the cluster in TF_CONFIG.
- `data-parallel`: keras.distribution.DataParallel over every device of every process (JAX
  backend); `train.hosts` starts a multi-process run through keras.distribution.initialize
  (jax.distributed; on CPU its collectives go through gloo, JAX's default).

A multi-process run: Keras gives each process its share of every batch by re-batching and
sharding a tf.data pipeline, which needs every batch of one static size. So the training
stream drops an epoch's last partial batch (metrics.json: train_images_dropped_per_epoch) and
validation pads its last batch with sample weights that keep loss and accuracy those of the
real images (kerasclf.data.pipeline.fit_inputs, static_batches); the per-epoch confusion image
is skipped (a prediction over every process), and after training the chief alone scores the
checkpoint on its own devices (test accuracy, reports).

Batch semantics: `data.batch_size` is the GLOBAL batch, split evenly over the devices (each
engine does the split: tf.distribute for a tf.data pipeline, keras.distribution for arrays);
the learning rate is never rescaled silently (`optim.scale_lr_with_batch` applies the linear
rule on request). Only the chief (TensorFlow: the `chief` task or worker 0; JAX: process 0)
writes the run directory; the other workers train into a scratch folder that is removed.

`train.cpu_devices` splits the host CPU into N logical devices, so that all of this runs (and
is tested) on a machine without accelerators.

Each engine imports its framework (tensorflow, jax, keras) inside its factory: this registry
is read when the config is validated, and a JAX-only install has no TensorFlow.
"""

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace

from kerasclf.backend import have_tensorflow, keras_backend
from kerasclf.config.checks import process_id
from kerasclf.console import import_tensorflow_quietly
from kerasclf.errors import ConfigError
from kerasclf.registry import DISTRIBUTIONS

register_distribution = DISTRIBUTIONS.register


@dataclass
class Distribution:
    """What a run needs from its engine: a scope to build, compile and fit in, and facts."""

    name: str
    devices: int = 1
    hosts: int = 1
    is_chief: bool = True
    scope_factory: object = contextlib.nullcontext
    needs_tf_data: bool = False  # multi-process JAX: Keras shards only tf.data input per process
    scratch: list = field(default_factory=list)

    def scope(self):
        return self.scope_factory()

    @property
    def multi_process(self):
        """Several JAX processes: every batch full (training.feeding), evaluation on the chief after training."""
        return self.needs_tf_data

    def on_one_device_after_training(self):
        """After a multi-process run's last epoch, the chief alone scores the saved checkpoint on its
        own devices (the global distribution is unset: a computation over the processes' shared
        variables would wait for the others); False on the other processes, which stop there."""
        if not self.multi_process:
            return True
        if self.is_chief:
            import keras  # lazy: this registry module is read when a config is validated

            keras.distribution.set_distribution(None)
        return self.is_chief

    def describe(self, global_batch):
        return {
            "distribute": self.name, "devices": self.devices, "hosts": self.hosts,
            "global_batch_size": global_batch, "per_device_batch_size": global_batch // self.devices,
        }

    def local_config(self, cfg):
        """The chief runs `cfg`; another worker writes its run folder to scratch (removed by
        `close`) and skips the after-training reports, which the chief writes."""
        if self.needs_tf_data:
            if not have_tensorflow():
                raise ConfigError(
                    "A multi-process data-parallel run feeds each process its share through tf.data, which needs "
                    "TensorFlow: pip install 'kerasclf[tf]' (the model still runs on JAX)."
                )
            cfg = replace(cfg, train=replace(cfg.train, data_on_device=False))
        if self.is_chief:
            return cfg
        scratch = tempfile.mkdtemp(prefix="kerasclf-worker-")
        self.scratch.append(scratch)
        return replace(cfg, train=replace(cfg.train, log_dir=scratch, evaluate_after=False))

    def close(self):
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)


def split_cpu(count, backend):
    """N logical CPU devices (train.cpu_devices), set before the backend starts its devices."""
    if not count:
        return
    if backend == "jax":
        flag = f"--xla_force_host_platform_device_count={count}"
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
        os.environ["XLA_FLAGS"] = " ".join([*flags, flag])
    elif backend == "tensorflow":
        import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

        cpu = tf.config.list_physical_devices("CPU")[0]
        current = tf.config.get_logical_device_configuration(cpu)
        if current is None or len(current) != count:
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
            except RuntimeError as exc:  # TensorFlow's devices were already started in this process
                raise ConfigError(
                    f"train.cpu_devices={count} must be set before TensorFlow starts its devices, but they "
                    f"already run with {len(current or [cpu])} CPU device(s) in this process ({exc}). "
                    "Start a fresh `kerasclf train` process."
                ) from None


@register_distribution("none", description="one device", backend=None)
def _single(cfg):
    return Distribution("none")


@register_distribution("mirrored", description="tf.distribute.MirroredStrategy: every local GPU (or train.cpu_devices)",
                       backend="tensorflow")
def _mirrored(cfg):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    devices = [d.name for d in gpus] or [d.name for d in cpus]
    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution("mirrored", devices=strategy.num_replicas_in_sync, scope_factory=strategy.scope)


# Keras 3.15's TensorFlow trainer cannot fit under MultiWorkerMirroredStrategy: before the first
# step it MEAN-reduces the first input batch across workers to read its shapes, and after each step
# it reduces the scalar logs with a concatenation along axis 0; both fail on every model (seen with a
# 2-process localhost cluster and a bare keras.Sequential, TensorFlow 2.21). The engine stays
# registered, and the validation pass refuses it with the message of `unusable`, until a Keras release
# trains under it: tests/test_distribute.py runs a bare Keras cluster and fails when one does.


@register_distribution("multi-worker", description="tf.distribute.MultiWorkerMirroredStrategy over TF_CONFIG's cluster",
                       backend="tensorflow", unusable=(
    "train.distribute=multi-worker is not usable with this Keras: Keras 3's TensorFlow trainer fails under "
    "tf.distribute.MultiWorkerMirroredStrategy (it reduces the first batch and the per-step logs across workers "
    "with ops that fail for every model). For several hosts use the JAX backend: KERAS_BACKEND=jax with "
    "train.distribute=data-parallel and train.hosts (docs/distributed.md); on one machine, "
    "train.distribute=mirrored."
))
def _multi_worker(cfg):
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "train.distribute=multi-worker reads the cluster from the TF_CONFIG environment variable, which is "
            'not set. Set it on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' (docs/distributed.md).'
        )
    try:
        tf_config = json.loads(raw)
        task, cluster = tf_config["task"], tf_config["cluster"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not a JSON object with 'cluster' and 'task' ({exc}); got {raw!r}.") from None
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    chief = task.get("type") == "chief" or ("chief" not in cluster and task.get("type") == "worker"
                                            and int(task.get("index", 0)) == 0)
    hosts = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return Distribution("multi-worker", devices=strategy.num_replicas_in_sync, hosts=hosts, is_chief=chief,
                        scope_factory=strategy.scope)


@register_distribution("data-parallel", description="keras.distribution.DataParallel: every device of every process",
                       backend="jax")
def _data_parallel(cfg):
    import keras  # lazy: this registry module is read when a config is validated, before Keras starts

    hosts = list(cfg.train.hosts)
    if len(hosts) > 1:
        keras.distribution.initialize(
            job_addresses=",".join(hosts), num_processes=len(hosts), process_id=process_id(cfg)
        )
    import jax  # lazy: JAX only for this engine

    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)  # model building and fit read the global setting
    return Distribution("data-parallel", devices=len(devices), hosts=jax.process_count(),
                        is_chief=jax.process_index() == 0, scope_factory=distribution.scope,
                        needs_tf_data=len(hosts) > 1)


def build_distribution(cfg):
    """The run's Distribution (devices split and engines started here, before any data)."""
    backend = keras_backend()
    if backend == "tensorflow":
        import_tensorflow_quietly()  # its start-up lines once, before a strategy imports it
    split_cpu(cfg.train.cpu_devices, backend)
    return DISTRIBUTIONS.get(cfg.train.distribute).factory(cfg)


def check_split_sizes(data, distribute, devices, multi_process=False):
    """keras.distribution shards every batch evenly over the devices, the last partial one too, so
    each split's size must be a multiple of the device count (tf.distribute pads; this does not).
    A multi-process run pads and drops to full batches instead (training.feeding). Run by
    assemble.prepare (so by --dry-run) when the config gives the device count
    (kerasclf.config.checks.known_device_count), and after the engine starts, which counts accelerators."""
    if distribute != "data-parallel" or devices == 1 or multi_process:
        return
    for name in ("train", "val", "test"):
        split = data.split(name)
        if split is not None and len(split) % devices:
            raise ConfigError(
                f"train.distribute=data-parallel shards every batch evenly over {devices} devices, the "
                f"last one of an epoch too, but the {name} split has {len(split)} images, not a multiple of "
                f"{devices}: change data.val_fraction / data.test_fraction or data.limit_per_class so "
                "that each split divides evenly."
            )


def check_global_batch(batch_size, distribution):
    if batch_size % distribution.devices:
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch and must split evenly over the "
            f"{distribution.devices} devices of train.distribute={distribution.name}: use a multiple of "
            f"{distribution.devices} (e.g. {batch_size - batch_size % distribution.devices or distribution.devices})."
        )
