"""`train.deterministic: true`: the same seed gives the same metrics, run after run.

What varies between two runs with the same seed, and what turns it off:
- RNG: keras.utils.set_random_seed (always called) seeds Python, numpy and the backend;
  layers' SeedGenerators start from it.
- TensorFlow ops with nondeterministic kernels (atomics in GPU reductions, some cuDNN
  algorithms, parallel CPU scatter): tf.config.experimental.enable_op_determinism, which
  picks deterministic kernels or raises where none exists.
- XLA on GPU (JAX, and TensorFlow with jit_compile): --xla_gpu_deterministic_ops (it must be
  in XLA_FLAGS before the backend starts, so it is set here, before any computation).
- tf.data: parallel maps may return batches out of order, and a random map run in parallel
  draws in thread order: data/pipeline.py keeps order and runs random maps one at a time.
- The batch order itself is already a function of (seed, epoch) (data/order.py).
"""

import os
import warnings

import keras

from kerasclf.backend import have_tensorflow
from kerasclf.keras_private import jax_gpu_started

XLA_FLAG = "--xla_gpu_deterministic_ops=true"


def enable_determinism():
    """Call before the backend computes anything (run.setup_backend does, before seeding)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_FLAG}".strip()
        if keras.backend.backend() == "jax" and jax_gpu_started():
            warnings.warn(
                "train.deterministic: JAX had already started on the GPU, so XLA will not see "
                f"{XLA_FLAG}; set XLA_FLAGS={XLA_FLAG} in the environment for deterministic GPU runs.",
                stacklevel=2,
            )
    if keras.backend.backend() == "tensorflow" and have_tensorflow():
        import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

        tf.config.experimental.enable_op_determinism()
